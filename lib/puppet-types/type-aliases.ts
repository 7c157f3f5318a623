import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import type { PuppetType } from './puppet-type';
import { parseType, type TypeAliasLookup } from './type-parser';
import { TypeSyntaxError } from './type-syntax-error';

/** A type alias that cannot be used: a cycle, a bad file, or an expression that does not parse. */
export class TypeAliasError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TypeAliasError';
  }
}

interface AliasSource {
  name: string;
  expression: string;
  origin: string;
  type?: PuppetType;
  node?: PuppetType;
}

const ALIAS_DECLARATION = /^\s*type\s+((?:[A-Z]\w*)(?:::[A-Z]\w*)+)\s*=\s*([\s\S]*?)\s*$/;

/**
 * Module type aliases (`<module>/types/*.pp`: `type Mod::Name = <expr>`, docs/task-format.md §7.2,
 * module type aliases). Sources are read up front; each alias is parsed on first use (lazily), so one broken
 * alias only affects the tasks that use it. Names are case-insensitive, as in Puppet's loader.
 */
export class TypeAliases implements TypeAliasLookup {
  private readonly sources = new Map<string, AliasSource>();
  private readonly resolving = new Set<string>();

  /** Adds one alias declaration (`type Mod::Name = Struct[...]`); `origin` names it in errors (a file path). */
  addSource(text: string, origin: string): void {
    const m = ALIAS_DECLARATION.exec(stripComments(text));
    if (!m) throw new TypeAliasError(`${origin}: expected 'type Module::Name = <type expression>'`);
    this.sources.set(m[1].toLowerCase(), { name: m[1], expression: m[2], origin });
  }

  /** Adds every `types/**\/*.pp` of a module directory; a file whose declaration is malformed is skipped and returned as a problem. */
  addModuleDir(moduleDir: string): string[] {
    const problems: string[] = [];
    const typesDir = join(moduleDir, 'types');
    const walk = (dir: string) => {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        return;
      }
      for (const n of names.sort()) {
        const full = join(dir, n);
        if (statSync(full).isDirectory()) walk(full);
        else if (n.endsWith('.pp')) {
          try {
            this.addSource(readFileSync(full, 'utf8'), `${basename(moduleDir)}/${relative(moduleDir, full)}`);
          } catch (err) {
            problems.push((err as Error).message);
          }
        }
      }
    };
    walk(typesDir);
    return problems;
  }

  /** Names of every alias known, as declared. */
  names(): string[] {
    return [...this.sources.values()].map((s) => s.name);
  }

  /** The type expression `name` was declared with, or undefined when no source declares it. */
  expressionOf(name: string): string | undefined {
    return this.sources.get(name.toLowerCase())?.expression;
  }

  /** The lazily-resolved alias node for `name`, or undefined when no source declares it. */
  lookup(name: string): PuppetType | undefined {
    const src = this.sources.get(name.toLowerCase());
    if (!src) return undefined;
    src.node ??= { kind: 'Alias', name: src.name, resolve: () => this.resolve(src) };
    return src.node;
  }

  private resolve(src: AliasSource): PuppetType {
    if (src.type) return src.type;
    if (this.resolving.has(src.name)) {
      throw new TypeAliasError(
        `type alias ${src.name} (${src.origin}) refers to itself through ${[...this.resolving].join(' -> ')} -> ${src.name} without an Array, Hash, Tuple or Struct in between`,
      );
    }
    this.resolving.add(src.name);
    try {
      let type: PuppetType;
      try {
        type = parseType(src.expression, { aliases: this });
      } catch (err) {
        if (err instanceof TypeSyntaxError) throw new TypeAliasError(`type alias ${src.name} (${src.origin}): ${err.message}`);
        throw err;
      }
      // Follow the non-container wrappers now: an alias that is (a Variant of) itself has no
      // meaning; one reached only through a container is a legal recursive type.
      checkHead(type);
      src.type = type;
      return type;
    } finally {
      this.resolving.delete(src.name);
    }
  }
}

function checkHead(t: PuppetType): void {
  switch (t.kind) {
    case 'Alias':
      t.resolve();
      return;
    case 'Optional':
    case 'NotUndef':
      checkHead(t.type);
      return;
    case 'Variant':
      t.types.forEach(checkHead);
      return;
    default:
      return;
  }
}

/** Drops whole-line `#` comments (a trailing `#` could be inside a regex or string, so it is left to the parser to reject). */
function stripComments(text: string): string {
  return text
    .split('\n')
    .map((line) => (/^\s*#/.test(line) ? '' : line))
    .join('\n');
}

/** Aliases from a map of alias name → type expression (`{'Mod::Port': 'Integer[1, 65535]'}`), for tests and in-memory catalogs. */
export function typeAliasesFrom(map: Record<string, string>): TypeAliases {
  const aliases = new TypeAliases();
  for (const [name, expression] of Object.entries(map)) aliases.addSource(`type ${name} = ${expression}`, `alias ${name}`);
  return aliases;
}
