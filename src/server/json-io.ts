// JSON in and out for the allocation route, the one hot path (issue 17, point 4): express.json
// and res.json cost about a sixth of an allocation's main-thread time (bench/allocate's profile:
// type and charset parsing, a stream decoder, Content-Type rebuilt twice, a copy of the
// answer). What an allocation sends and gets is plain: these read and write it directly.
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import express from 'express';
import { PkmError } from '../errors.js';

/** The Content-Types read here; any other goes to express.json (and the 415 check before it). */
const PLAIN_TYPES: ReadonlySet<string | undefined> = new Set([
  'application/json',
  'application/json; charset=utf-8',
]);

/** body-parser's strict mode: a JSON object or array, after optional whitespace. */
const STRICT_START = /^[ \t\n\r]*[{[]/;

/**
 * express.json({limit, strict: true}) for a small body sent plainly: a Content-Length within
 * `limit`, application/json (UTF-8), no Content-Encoding, no chunking. Anything else, and so
 * every refusal about size, encoding or type, is express.json's own, with its own answers.
 * Parsed as body-parser parses: UTF-8, a leading byte order mark dropped, strict.
 */
export function smallJsonBody(limit: number): RequestHandler {
  const full = express.json({ limit, strict: true, type: 'application/json' });
  return (req: Request, res: Response, next: NextFunction): void => {
    const { headers } = req;
    const length = Number(headers['content-length']);
    const plain =
      PLAIN_TYPES.has(headers['content-type']) &&
      headers['content-encoding'] === undefined &&
      headers['transfer-encoding'] === undefined &&
      Number.isSafeInteger(length) &&
      length > 0 &&
      length <= limit &&
      req.body === undefined;
    if (!plain) {
      full(req, res, next);
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const settle = (err?: unknown): void => {
      if (settled) return;
      settled = true;
      req.removeListener('data', onData);
      next(err);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > length) {
        settle(new PkmError('INVALID_BODY', 'the body length does not match Content-Length'));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('error', (err) => settle(err));
    req.once('end', () => {
      if (settled) return;
      if (received !== length) {
        settle(new PkmError('INVALID_BODY', 'the body length does not match Content-Length'));
        return;
      }
      let text = Buffer.concat(chunks, received).toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      try {
        if (text.length > 0 && !STRICT_START.test(text))
          throw new SyntaxError('not a JSON object or array');
        // body-parser's special case: an empty body (a byte order mark alone) is {}.
        req.body = text.length === 0 ? {} : JSON.parse(text);
      } catch {
        settle(new PkmError('MALFORMED_JSON', 'the body is not valid JSON'));
        return;
      }
      settle();
    });
  };
}

/**
 * res.json for a plain answer: the status already set (200 unless changed), the body
 * serialized once and sent with its length, as express would send it.
 */
export function sendJson(res: Response, body: unknown): void {
  const text = JSON.stringify(body);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}
