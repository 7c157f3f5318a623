import type { Parameter } from '../../gen/baton/v1/task';
import {
  acceptsUndef,
  InvalidParameterTypeError,
  parseType,
  typeReferences,
  TypeAliasError,
  TypeSyntaxError,
  type PuppetType,
  type TypeAliases,
} from '../../lib/puppet-types';
import { TaskLoadError } from './task-load-error';
import type { ParameterMetadata } from './task-metadata';

/** The type of a parameter whose metadata gives none (Puppet's TaskInstantiator; docs/task-format.md §2.2). */
export const DEFAULT_PARAMETER_TYPE = 'Data';

/**
 * The parameter types of one scan of one environment, parsed with lib/puppet-types against the
 * environment's module type aliases (`types/*.pp`). Each distinct type text is parsed once per
 * scan: a catalog of thousands of tasks repeats a few hundred type strings.
 */
export class ParameterTypes {
  private readonly parsed = new Map<string, PuppetType | TypeSyntaxError | TypeAliasError>();

  constructor(private readonly aliases?: TypeAliases) {}

  /** The parsed type, from the cache; throws the parse error of a type that is not valid Puppet. */
  private parse(typeText: string): PuppetType {
    let known = this.parsed.get(typeText);
    if (known === undefined) {
      try {
        known = parseType(typeText, { aliases: this.aliases });
        acceptsUndef(known); // resolves the aliases at the head, so a broken one fails here
      } catch (err) {
        if (!(err instanceof TypeSyntaxError || err instanceof TypeAliasError)) throw err;
        known = err;
      }
      this.parsed.set(typeText, known);
    }
    if (known instanceof Error) throw known;
    return known;
  }

  /**
   * The module type aliases the given types use, transitively: alias name → type expression,
   * sent with the task (Task.type_aliases) so the scheduler validates input as Puppet would.
   */
  aliasSources(typeTexts: string[]): Record<string, string> {
    const out: Record<string, string> = {};
    if (!this.aliases) return out;
    const seen = new Set<string>();
    for (const text of typeTexts) {
      let type: PuppetType;
      try {
        type = this.parse(text);
      } catch {
        continue; // reported as the task's load error by acceptsUndef
      }
      for (const name of typeReferences(type, seen).aliases) {
        const expression = this.aliases.expressionOf(name);
        if (expression !== undefined) out[name] = expression;
      }
    }
    return out;
  }

  /**
   * True when the type accepts undef, so the parameter may be left out (docs/task-format.md §4 step
   * 4): `Optional`, `Undef`, `Any`, `Data`, a Variant holding one, or an alias of one. A name
   * no module declares never matches, so such a parameter is required. Throws the parse
   * error of a type that is not valid Puppet or uses a broken alias.
   */
  acceptsUndef(typeText: string): boolean {
    return acceptsUndef(this.parse(typeText));
  }
}

/**
 * The declared parameters as proto Parameters, sorted by name. A parameter whose type does not
 * parse makes the whole task fail to load (as in Puppet,
 * docs/task-format.md §1 item 11): `puppet.tasks/invalid-metadata` naming the parameter and the
 * parse error.
 */
export function buildParameters(parameters: Map<string, ParameterMetadata>, what: string, types: ParameterTypes = new ParameterTypes()): Parameter[] {
  return [...parameters.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, p]) => {
      const type = p.type ?? DEFAULT_PARAMETER_TYPE;
      let optional: boolean;
      try {
        optional = types.acceptsUndef(type);
      } catch (err) {
        const invalid = new InvalidParameterTypeError(name, type, err as TypeSyntaxError | TypeAliasError);
        throw new TaskLoadError('puppet.tasks/invalid-metadata', `${what}: ${invalid.message}`, { parameter: name, type });
      }
      return {
        name,
        type,
        description: p.description ?? '',
        sensitive: p.sensitive,
        defaultValue: p.hasDefault ? p.default : undefined,
        // A default makes the parameter optional to the caller: it is applied when the
        // value is absent (docs/task-format.md §4 step 3).
        required: !p.hasDefault && !optional,
      };
    });
}
