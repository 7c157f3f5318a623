import type { Parameter } from '../../gen/baton/v1/task';
import type { ParameterMetadata } from './task-metadata';

/** The type of a parameter whose metadata gives none (Puppet's TaskInstantiator; task-spec.md §2.2). */
export const DEFAULT_PARAMETER_TYPE = 'Data';

/**
 * True when a Puppet type expression accepts undef, so the parameter may be left out.
 *
 * A deliberately small approximation until the Puppet type system lands in lib/ (a later
 * issue): `Optional[...]` (and bare `Optional`), `Any`, `Data` and `Undef` accept undef;
 * every other type is taken as requiring a value. `Variant[..., Undef]`, aliases and the like
 * are therefore reported as required, which errs on the side of asking for input.
 */
export function typeAcceptsUndef(type: string): boolean {
  const t = type.trim();
  return t === 'Optional' || t.startsWith('Optional[') || t === 'Any' || t === 'Data' || t === 'Undef';
}

/** The declared parameters as proto Parameters, sorted by name. */
export function buildParameters(parameters: Map<string, ParameterMetadata>): Parameter[] {
  return [...parameters.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, p]) => {
      const type = p.type ?? DEFAULT_PARAMETER_TYPE;
      return {
        name,
        type,
        description: p.description ?? '',
        sensitive: p.sensitive,
        defaultValue: p.hasDefault ? p.default : undefined,
        // A default makes the parameter optional to the caller: it is applied when the
        // value is absent (task-spec.md §4 step 3).
        required: !p.hasDefault && !typeAcceptsUndef(type),
      };
    });
}
