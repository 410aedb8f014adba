// Every error leaves the server as {"error":{"code","message"}}, its status from src/errors.ts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { PkmError, toPkmError } from '../errors.js';
import type { Logger } from '../log.js';
import { sendJson } from './json-io.js';

/** body-parser's error types, as coded errors. */
const BODY_ERRORS: Record<string, (err: Error) => PkmError> = {
  'entity.parse.failed': () => new PkmError('MALFORMED_JSON', 'the body is not valid JSON'),
  // Each route has its own limit (4 KiB to 10 MiB): say the one this request met.
  'entity.too.large': (e) =>
    new PkmError(
      'PAYLOAD_TOO_LARGE',
      'limit' in e && typeof e.limit === 'number'
        ? `the body is larger than this route's limit of ${e.limit} bytes`
        : "the body is larger than this route's limit",
    ),
  'encoding.unsupported': (e) => new PkmError('UNSUPPORTED_MEDIA_TYPE', e.message),
  'charset.unsupported': (e) => new PkmError('UNSUPPORTED_MEDIA_TYPE', e.message),
  'request.size.invalid': () =>
    new PkmError('INVALID_BODY', 'the body length does not match Content-Length'),
};

/** The Keymanager API's routes (specs/keymanager-APIs), whose errors are its ErrorResponse. */
const KEYMANAGER = '/eth/';

/**
 * The Keymanager spec's statuses (keymanager-oapi.yaml components/responses): 401 "no token is
 * found", 403 "a token is found but is invalid". pkm elsewhere answers an unknown token 401.
 */
export function keymanagerStatus(err: PkmError): number {
  return err.code === 'INVALID_TOKEN' ? 403 : err.status;
}

export function sendError(res: Response, err: PkmError): void {
  if (err.retryAfter !== undefined) res.setHeader('retry-after', String(err.retryAfter));
  // The Keymanager spec's ErrorResponse requires a top-level "message": its routes send it
  // beside pkm's own {"error":{"code","message"}}, so both kinds of client read the answer.
  const body = err.toJSON();
  const keymanager = res.req.path.startsWith(KEYMANAGER);
  res
    .status(keymanager ? keymanagerStatus(err) : err.status)
    .json(keymanager ? { message: err.message, ...body } : body);
}

export function notFound(req: Request, _res: Response, next: NextFunction): void {
  next(new PkmError('NOT_FOUND', `no route for ${req.method} ${req.path}`));
}

export function methodNotAllowed(...allowed: string[]) {
  return (req: Request, res: Response): void => {
    res.setHeader('allow', allowed.join(', '));
    sendError(
      res,
      new PkmError(
        'METHOD_NOT_ALLOWED',
        `${req.method} is not allowed here; use ${allowed.join(' or ')}`,
      ),
    );
  };
}

/** What a request's error is as a coded error (body-parser's typed ones mapped). */
function codedError(raw: unknown): PkmError {
  const type = typeof raw === 'object' && raw !== null && 'type' in raw ? raw.type : undefined;
  const mapper = typeof type === 'string' ? BODY_ERRORS[type] : undefined;
  return mapper && raw instanceof Error ? mapper(raw) : toPkmError(raw);
}

export function errorHandler(log: Logger) {
  return (raw: unknown, req: Request, res: Response, _next: NextFunction): void => {
    const err = codedError(raw);
    if (err.code === 'INTERNAL')
      log.error({ err: raw, method: req.method, path: req.path }, 'request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, err);
  };
}

/**
 * errorHandler for a request served outside express (allocation-shortcut.ts), whose path is
 * never the Keymanager API's: the same status, Retry-After and body as sendError gives.
 */
export function answerError(
  log: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  raw: unknown,
): void {
  const err = codedError(raw);
  if (err.code === 'INTERNAL')
    log.error(
      { err: raw, method: req.method, path: (req.url ?? '').split('?')[0] },
      'request failed',
    );
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err.retryAfter !== undefined) res.setHeader('retry-after', String(err.retryAfter));
  res.statusCode = err.status;
  sendJson(res, err.toJSON());
}
