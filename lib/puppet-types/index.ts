/**
 * Baton's Puppet type system for task parameters (docs/task-format.md §7, §8):
 * parse → `PuppetType`, compile a task's parameters once → `Signature`, validate input text,
 * coerce command-line strings. See each module for the rules it follows.
 */
export {
  acceptsUndef,
  describeType,
  describeType as typeToString,
  resolved,
  structKeyOptional,
  typeReferences,
  unresolvedReferences,
  type PuppetType,
  type StructMember,
} from './puppet-type';
export { parseType, MAX_TYPE_DEPTH, type ParseTypeOptions, type TypeAliasLookup } from './type-parser';
export { TypeSyntaxError } from './type-syntax-error';
export { TypeAliases, TypeAliasError, typeAliasesFrom } from './type-aliases';
export { translateRubyRegex, RubyRegexError, type RubyRegex } from './ruby-regex';
export { JsonNumber, JsonSyntaxError, parseJsonLexemes, fromPlain, toPlain, stringifyJsonValue, type JsonValue, type JsonObject } from './json-lexeme';
export { isInstance, describeMismatch, valueTypeName, codePointLength } from './type-instance';
export {
  Signature,
  compileSignature,
  checkParameterTypes,
  type ParameterTypeReport,
  coerceCliValue,
  InvalidParameterTypeError,
  InputShapeError,
  UNDECLARED_KEY,
  type CoercedValue,
  type CompiledParameter,
  type CompileSignatureOptions,
  type InputEntry,
  type InputViolation,
  type ParameterDeclaration,
  type SignatureValidation,
} from './signature';
