import type { Parameter } from '../../gen/baton/v1/task';
import { acceptsUndef, InvalidParameterTypeError, parseType, TypeAliasError, TypeSyntaxError, type TypeAliasLookup } from '../../lib/puppet-types';
import { TaskLoadError } from './task-load-error';
import type { ParameterMetadata } from './task-metadata';

/** The type of a parameter whose metadata gives none (Puppet's TaskInstantiator; task-spec.md §2.2). */
export const DEFAULT_PARAMETER_TYPE = 'Data';

/**
 * The parameter types of one scan of one environment, parsed with lib/puppet-types against the
 * environment's module type aliases (`types/*.pp`). Each distinct type text is parsed once per
 * scan: a catalog of thousands of tasks repeats a few hundred type strings.
 */
export class ParameterTypes {
  private readonly optional = new Map<string, boolean | TypeSyntaxError | TypeAliasError>();

  constructor(private readonly aliases?: TypeAliasLookup) {}

  /**
   * True when the type accepts undef, so the parameter may be left out (task-spec.md §4 step
   * 4): `Optional`, `Undef`, `Any`, `Data`, a Variant holding one, or an alias of one. A name
   * no module declares never matches, so such a parameter is required. Throws the parse
   * error of a type that is not valid Puppet or uses a broken alias.
   */
  acceptsUndef(typeText: string): boolean {
    let known = this.optional.get(typeText);
    if (known === undefined) {
      try {
        known = acceptsUndef(parseType(typeText, { aliases: this.aliases }));
      } catch (err) {
        if (!(err instanceof TypeSyntaxError || err instanceof TypeAliasError)) throw err;
        known = err;
      }
      this.optional.set(typeText, known);
    }
    if (typeof known !== 'boolean') throw known;
    return known;
  }
}

/**
 * The declared parameters as proto Parameters, sorted by name. A parameter whose type does not
 * parse makes the whole task fail to load (task-spec.md §1 item 11: "a bad `type` string fails
 * task loading"): `puppet.tasks/invalid-metadata` naming the parameter and the parse error.
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
        // value is absent (task-spec.md §4 step 3).
        required: !p.hasDefault && !optional,
      };
    });
}
