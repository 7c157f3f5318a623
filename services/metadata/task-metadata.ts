import { NAME_SEGMENT } from '../../lib/names';
import { TaskLoadError } from './task-load-error';

/**
 * Parsing and validating one task metadata document (docs/task-format.md §2). Validation is
 * structural: each known key has the JSON type the spec gives it, unknown keys are kept (the
 * schema allows them, Puppet Server returns them verbatim). `null` counts as absent, as in
 * Puppet, which reads metadata with `metadata['key']`. Puppet type expressions are not parsed
 * here yet (a later issue); they are only required to be strings.
 */

/** The input methods a metadata file may name (docs/task-format.md §2.1). */
export const INPUT_METHODS = ['stdin', 'environment', 'both', 'powershell'] as const;

/** One of INPUT_METHODS. */
export type InputMethodName = (typeof INPUT_METHODS)[number];

/** One declared parameter, as written in the metadata. */
export interface ParameterMetadata {
  type?: string;
  description?: string;
  sensitive: boolean;
  /** True when the metadata has a non-null `default`. */
  hasDefault: boolean;
  default?: unknown;
}

/** One entry of `implementations`, as written in the metadata. */
export interface ImplementationMetadata {
  name: string;
  requirements: string[];
  inputMethod?: InputMethodName;
  files: string[];
}

/** A validated metadata document. */
export interface TaskMetadata {
  description?: string;
  supportsNoop: boolean;
  inputMethod?: InputMethodName;
  private: boolean;
  remote: boolean;
  /** Undefined when the metadata has no `parameters` object (any input accepted). */
  parameters?: Map<string, ParameterMetadata>;
  /** Undefined when the metadata has no `implementations` (single same-named executable). */
  implementations?: ImplementationMetadata[];
  /** Top-level extra files, `<module>/<mount>/<path>`. */
  files: string[];
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses the text of a metadata file: an empty (or blank) file is `{}` (docs/task-format.md §1
 * item 11), a UTF-8 byte order mark is ignored, and anything JSON.parse rejects is
 * `puppet.tasks/unparseable-metadata` with the parser's message.
 */
export function parseMetadataText(text: string, what: string): unknown {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') return {};
  try {
    return JSON.parse(body) as unknown;
  } catch (err) {
    throw new TaskLoadError('puppet.tasks/unparseable-metadata', `${what}: ${(err as Error).message}`);
  }
}

/** Reads `description` and `private` of a document that may not validate, for listing a broken task. */
export function salvageListingFields(doc: unknown): { description: string; private: boolean } {
  if (!isObject(doc)) return { description: '', private: false };
  return { description: typeof doc.description === 'string' ? doc.description : '', private: doc.private === true };
}

/** Validates a parsed metadata document; a violation is `puppet.tasks/invalid-metadata` naming the key. */
export function validateMetadata(doc: unknown, what: string): TaskMetadata {
  const invalid = (key: string, expected: string) => new TaskLoadError('puppet.tasks/invalid-metadata', `${what}: '${key}' must be ${expected}`, { key });
  if (!isObject(doc)) throw new TaskLoadError('puppet.tasks/invalid-metadata', `${what}: the metadata must be a JSON object`);

  const optional = <T>(key: string, value: unknown, check: (v: unknown) => v is T, expected: string): T | undefined => {
    if (value === undefined || value === null) return undefined;
    if (!check(value)) throw invalid(key, expected);
    return value;
  };
  const isString = (v: unknown): v is string => typeof v === 'string';
  const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
  const isInteger = (v: unknown): v is number => Number.isInteger(v);
  const isArray = (v: unknown): v is unknown[] => Array.isArray(v);
  const isInputMethod = (v: unknown): v is InputMethodName => (INPUT_METHODS as readonly unknown[]).includes(v);
  const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);
  const inputMethods = `one of ${INPUT_METHODS.join(', ')}`;

  optional('puppet_task_version', doc.puppet_task_version, isInteger, 'an integer');
  optional('extensions', doc.extensions, isObject, 'an object');
  optional('identifiers', doc.identifiers, isObject, 'an object');
  const metadata: TaskMetadata = {
    description: optional('description', doc.description, isString, 'a string'),
    supportsNoop: optional('supports_noop', doc.supports_noop, isBoolean, 'a boolean') ?? false,
    inputMethod: optional('input_method', doc.input_method, isInputMethod, inputMethods),
    private: optional('private', doc.private, isBoolean, 'a boolean') ?? false,
    remote: optional('remote', doc.remote, isBoolean, 'a boolean') ?? false,
    files: optional('files', doc.files, isStringArray, 'an array of strings') ?? [],
  };

  const parameters = optional('parameters', doc.parameters, isObject, 'an object mapping parameter names to parameters');
  if (parameters) {
    metadata.parameters = new Map();
    for (const [name, p] of Object.entries(parameters)) {
      const key = `parameters.${name}`;
      if (!NAME_SEGMENT.test(name)) throw invalid(key, 'named like ^[a-z][a-z0-9_]*$');
      if (!isObject(p)) throw invalid(key, 'an object');
      metadata.parameters.set(name, {
        type: optional(`${key}.type`, p.type, isString, 'a string (a Puppet type expression)'),
        description: optional(`${key}.description`, p.description, isString, 'a string'),
        sensitive: optional(`${key}.sensitive`, p.sensitive, isBoolean, 'a boolean') ?? false,
        // A null default is no default: Puppet applies a default when the value is absent
        // or null, so a null default leaves the value null (docs/task-format.md §2.2).
        hasDefault: p.default !== undefined && p.default !== null,
        default: p.default ?? undefined,
      });
    }
  }

  const implementations = optional('implementations', doc.implementations, isArray, 'an array');
  if (implementations) {
    metadata.implementations = implementations.map((impl, i) => {
      const key = `implementations[${i}]`;
      if (!isObject(impl)) throw invalid(key, 'an object');
      const name = optional(`${key}.name`, impl.name, isString, 'a string');
      if (!name) throw invalid(`${key}.name`, "the file name of an executable in this module's tasks directory");
      optional(`${key}.remote`, impl.remote, isBoolean, 'a boolean');
      return {
        name,
        requirements: optional(`${key}.requirements`, impl.requirements, isStringArray, 'an array of strings') ?? [],
        inputMethod: optional(`${key}.input_method`, impl.input_method, isInputMethod, inputMethods),
        files: optional(`${key}.files`, impl.files, isStringArray, 'an array of strings') ?? [],
      };
    });
  }
  return metadata;
}
