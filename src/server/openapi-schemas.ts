// The schemas of the OpenAPI document (openapi.ts): the error shape, from the code table in
// errors.ts, and every body and answer, generated from the api/ schemas (api/components.ts).
import { componentRef, componentSchemas, type JsonSchema } from '../api/components.js';
import { PUBKEY_ANY_CASE } from '../api/pubkey.js';
import { ERROR_CODES } from '../errors.js';

export type Schema = JsonSchema;

export const ref = (name: string): Schema => ({ $ref: componentRef(name) });
/** A pubkey in a path: either case, as the server lowers it before use. */
export const PUBKEY: Schema = { type: 'string', pattern: PUBKEY_ANY_CASE.source };

export const SCHEMAS: Record<string, Schema> = {
  ErrorCode: {
    type: 'string',
    enum: ERROR_CODES,
    description: 'Every code; CLI-only codes never come from the server',
  },
  Error: {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: ref('ErrorCode'), message: { type: 'string' } },
      },
    },
  },
  ...componentSchemas(),
};
