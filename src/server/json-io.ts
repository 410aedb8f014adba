// JSON in and out for the allocation route, the one hot path (issue 17, point 4): express.json
// and res.json cost about a sixth of an allocation's main-thread time (bench/allocate's profile:
// type and charset parsing, a stream decoder, Content-Type rebuilt twice, a copy of the
// answer). What an allocation sends and gets is plain: these read and write it directly.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
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
 * The Content-Length of a small body sent plainly, which readPlainJson reads: within `limit`,
 * application/json (UTF-8), no Content-Encoding, no chunking. Undefined for any other body,
 * left to express.json, and so is every refusal about size, encoding or type.
 */
export function plainJsonLength(headers: IncomingHttpHeaders, limit: number): number | undefined {
  const length = Number(headers['content-length']);
  const plain =
    PLAIN_TYPES.has(headers['content-type']) &&
    headers['content-encoding'] === undefined &&
    headers['transfer-encoding'] === undefined &&
    Number.isSafeInteger(length) &&
    length > 0 &&
    length <= limit;
  return plain ? length : undefined;
}

/**
 * A plain body of `length` bytes (plainJsonLength), parsed as body-parser parses it: UTF-8, a
 * leading byte order mark dropped, strict (an object or an array), an empty body as {}.
 */
export function readPlainJson(req: IncomingMessage, length: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let settled = false;
    const settle = (err: unknown, body?: unknown): void => {
      if (settled) return;
      settled = true;
      req.removeListener('data', onData);
      if (err === undefined) resolve(body);
      else reject(err);
    };
    const wrongLength = () =>
      new PkmError('INVALID_BODY', 'the body length does not match Content-Length');
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > length) settle(wrongLength());
      else chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('error', (err) => settle(err));
    req.once('end', () => {
      if (received !== length) {
        settle(wrongLength());
        return;
      }
      let text = Buffer.concat(chunks, received).toString('utf8');
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      try {
        if (text.length > 0 && !STRICT_START.test(text))
          throw new SyntaxError('not a JSON object or array');
        // body-parser's special case: an empty body (a byte order mark alone) is {}.
        settle(undefined, text.length === 0 ? {} : JSON.parse(text));
      } catch {
        settle(new PkmError('MALFORMED_JSON', 'the body is not valid JSON'));
      }
    });
  });
}

/**
 * express.json({limit, strict: true}): a plain body (plainJsonLength) read by readPlainJson,
 * any other by express.json itself, with its own answers.
 */
export function smallJsonBody(limit: number): RequestHandler {
  const full = express.json({ limit, strict: true, type: 'application/json' });
  return (req: Request, res: Response, next: NextFunction): void => {
    const length = plainJsonLength(req.headers, limit);
    if (length === undefined || req.body !== undefined) {
      full(req, res, next);
      return;
    }
    readPlainJson(req, length).then((body) => {
      req.body = body;
      next();
    }, next);
  };
}

/**
 * res.json for a plain answer: the status already set (200 unless changed), the body
 * serialized once and sent with its length, as express would send it.
 */
export function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.end(text);
}
