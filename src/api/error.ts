// Every refusal and failure on the wire: {"error":{"code","message"}}, the code from errors.ts's
// table. The code is stable; the message may change.
import { z } from 'zod';
import { ERROR_CODES } from '../errors.js';

export const ErrorCodeSchema = z
  .enum(ERROR_CODES)
  .describe('Every code; CLI-only codes never come from the server');

/** What the server sends for any error (server/http-errors.ts, PkmError.toJSON). */
export const ErrorAnswer = z.object({
  error: z.object({ code: ErrorCodeSchema, message: z.string() }),
});

const { code, message } = ErrorAnswer.shape.error.shape;

/**
 * How a client reads an error answer: each field on its own, so that a code this client does not
 * know (a newer server's) still brings its message, and a body that is no envelope reads as
 * neither field.
 */
export const ErrorReading = z.object({
  error: z.object({
    code: code.optional().catch(undefined),
    message: message.optional().catch(undefined),
  }),
});
