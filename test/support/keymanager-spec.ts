// The official Keymanager API (../shared/specs/keymanager-APIs, CC0), dereferenced with
// swagger-parser, and a small validator of its OpenAPI 3.0.3 schema objects (type, required,
// properties, items, enum, pattern, additionalProperties, allOf/oneOf/anyOf): enough for what
// local_keystores.yaml and voluntary_exit.yaml use. Tests check every body they send and every
// answer they get against the operation's schema, status by status.
import { fileURLToPath } from 'node:url';
import SwaggerParser from '@apidevtools/swagger-parser';

/** In ../shared beside the repository, as the test vectors are (test/keys/vectors.ts). */
const SPEC = fileURLToPath(
  new URL('../../../shared/specs/keymanager-APIs/keymanager-oapi.yaml', import.meta.url),
);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function typeOk(type: unknown, v: unknown): boolean {
  switch (type) {
    case 'string':
      return typeof v === 'string';
    case 'boolean':
      return typeof v === 'boolean';
    case 'integer':
      return Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    case 'array':
      return Array.isArray(v);
    case 'object':
      return isObject(v);
    default:
      return true;
  }
}

/** The problems of `value` against `schema`, each with its JSON path; [] when it conforms. */
export function problems(schema: unknown, value: unknown, at = '$'): string[] {
  if (!isObject(schema)) return [];
  const s = schema;
  const out: string[] = [];
  if (s.type !== undefined && !typeOk(s.type, value))
    return [`${at}: expected ${String(s.type)}, got ${JSON.stringify(value)}`];
  if (Array.isArray(s.enum) && !s.enum.some((e) => e === value))
    out.push(`${at}: ${JSON.stringify(value)} is not one of ${JSON.stringify(s.enum)}`);
  if (typeof s.pattern === 'string' && typeof value === 'string')
    if (!new RegExp(s.pattern).test(value)) out.push(`${at}: does not match ${s.pattern}`);
  if (Array.isArray(value) && s.items !== undefined)
    for (const [i, item] of value.entries()) out.push(...problems(s.items, item, `${at}[${i}]`));
  if (isObject(value)) {
    const props = isObject(s.properties) ? s.properties : {};
    for (const name of Array.isArray(s.required) ? s.required : [])
      if (typeof name === 'string' && !(name in value)) out.push(`${at}: lacks ${name}`);
    for (const [name, v] of Object.entries(value)) {
      const own = props[name];
      if (own !== undefined) out.push(...problems(own, v, `${at}.${name}`));
      else if (s.additionalProperties === false) out.push(`${at}: unexpected ${name}`);
      else if (isObject(s.additionalProperties))
        out.push(...problems(s.additionalProperties, v, `${at}.${name}`));
    }
  }
  if (Array.isArray(s.allOf)) for (const sub of s.allOf) out.push(...problems(sub, value, at));
  for (const key of ['oneOf', 'anyOf'] as const) {
    const list = s[key];
    if (Array.isArray(list) && !list.some((sub) => problems(sub, value, at).length === 0))
      out.push(`${at}: matches none of ${key}`);
  }
  return out;
}

export interface KeymanagerSpec {
  /** The request body's schema of an operation. */
  body(path: string, method: string): unknown;
  /** The answer's schema of an operation for a status; throws if the spec lists no such status. */
  answer(path: string, method: string, status: number): unknown;
  /** The dereferenced document. */
  readonly doc: Record<string, unknown>;
}

function dig(v: unknown, ...keys: string[]): unknown {
  let at = v;
  for (const k of keys) at = isObject(at) ? at[k] : undefined;
  return at;
}

function found(v: unknown, what: string): unknown {
  if (v === undefined) throw new Error(`the spec has no ${what}`);
  return v;
}

const JSON_SCHEMA = ['content', 'application/json', 'schema'];

export async function loadKeymanagerSpec(): Promise<KeymanagerSpec> {
  const bundled = await SwaggerParser.bundle(SPEC);
  const doc: unknown = await SwaggerParser.dereference(bundled);
  if (!isObject(doc)) throw new Error('the spec is not an object');
  return {
    doc,
    body: (path, method) =>
      found(
        dig(doc, 'paths', path, method, 'requestBody', ...JSON_SCHEMA),
        `${method} ${path} body`,
      ),
    answer: (path, method, status) =>
      found(
        dig(doc, 'paths', path, method, 'responses', String(status), ...JSON_SCHEMA),
        `${method} ${path} ${status} answer`,
      ),
  };
}

/** The spec's own example keystore (types/keystore.yaml), a JSON-encoded string. */
export function exampleKeystore(spec: KeymanagerSpec): string {
  const example = dig(spec.doc, 'components', 'schemas', 'Keystore', 'example');
  if (typeof example !== 'string') throw new Error('the spec has no example keystore');
  return example;
}
