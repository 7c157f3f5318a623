import { InputMethod, type Implementation, type Task, type TaskFile } from '../../gen/baton/v1/task';
import { buildParameters, type ParameterTypes } from './parameters';
import type { InputMethodName, TaskMetadata } from './task-metadata';

const INPUT_METHOD_ENUM: Record<InputMethodName, InputMethod> = {
  stdin: InputMethod.INPUT_METHOD_STDIN,
  environment: InputMethod.INPUT_METHOD_ENVIRONMENT,
  both: InputMethod.INPUT_METHOD_BOTH,
  powershell: InputMethod.INPUT_METHOD_POWERSHELL,
};

/** The proto InputMethod of a metadata `input_method`; unspecified when absent. */
export function inputMethodOf(name: InputMethodName | undefined): InputMethod {
  return name ? INPUT_METHOD_ENUM[name] : InputMethod.INPUT_METHOD_UNSPECIFIED;
}

/** What both task sources know once a task's metadata and files are resolved. */
export interface TaskParts {
  environment: string;
  /** Canonical name. */
  name: string;
  metadata: TaskMetadata;
  /** The metadata document as JSON text; undefined or blank for no metadata file. */
  rawMetadata: string | undefined;
  /** Implementations first, then extra files (docs/task-format.md §1 item 10). */
  files: TaskFile[];
  implementations: Implementation[];
  /** The environment's parameter types; default one without module type aliases. */
  types?: ParameterTypes;
}

/** The proto Task of a resolved task; throws TaskLoadError when a parameter type is invalid. */
export function assembleTask(parts: TaskParts): Task {
  const { metadata } = parts;
  const parameters = metadata.parameters ? buildParameters(metadata.parameters, `task ${parts.name}`, parts.types) : [];
  return {
    name: parts.name,
    environment: parts.environment,
    description: metadata.description ?? '',
    supportsNoop: metadata.supportsNoop,
    inputMethod: inputMethodOf(metadata.inputMethod),
    parameters,
    parametersDeclared: metadata.parameters !== undefined,
    files: parts.files,
    implementations: parts.implementations,
    private: metadata.private,
    remote: metadata.remote,
    metadataJson: parts.rawMetadata === undefined || parts.rawMetadata.trim() === '' ? '{}' : parts.rawMetadata,
    typeAliases: parts.types?.aliasSources(parameters.map((p) => p.type)) ?? {},
  };
}
