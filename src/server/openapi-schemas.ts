// The schemas of the OpenAPI document (openapi.ts): every body, answer and the error shape,
// generated from the api/ schemas (api/components.ts), and the pubkey of a path.
import { componentRef, componentSchemas, type JsonSchema } from '../api/components.js';
import { PUBKEY_ANY_CASE } from '../api/pubkey.js';

export type Schema = JsonSchema;

export const ref = (name: string): Schema => ({ $ref: componentRef(name) });
/** A pubkey in a path: either case, as the server lowers it before use. */
export const PUBKEY: Schema = { type: 'string', pattern: PUBKEY_ANY_CASE.source };

/** Every component: the bodies, answers and error shape, generated from api/. */
export const SCHEMAS: Record<string, Schema> = componentSchemas();
