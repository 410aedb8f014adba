// The fakes' small HTTP layer: JSON in and out on 127.0.0.1, routes by method and path pattern,
// and the Keymanager API's bearer auth (keymanager-oapi.yaml, info and components.responses:
// 401 when no token is found, 403 when a token is found but is invalid; every error body is an
// ErrorResponse, `{"message": …}`).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readIfExists, writePrivateFile } from '../../../src/files.js';

/** An answer: a status, and a JSON body (none for 202/204). */
export interface Answer {
  readonly status: number;
  readonly body?: unknown;
  /** Sent as text/plain instead of JSON (Web3Signer's signature answer without Accept: json). */
  readonly text?: string;
}

/** A failure a handler throws for a clean 4xx answer. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Request {
  readonly params: readonly string[];
  /** The parsed JSON body; undefined when there is none. */
  readonly body: unknown;
  readonly accept: string;
}

export interface Route {
  readonly method: 'GET' | 'POST' | 'DELETE';
  /** Anchored; its groups become `params`. */
  readonly path: RegExp;
  /** Whether the bearer token is required (the Keymanager routes: yes). */
  readonly auth: boolean;
  readonly handle: (req: Request) => Promise<Answer>;
}

/** The bytes a body may have: far above any test batch, far below memory trouble. */
const MAX_BODY = 16 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += b.length;
    if (size > MAX_BODY) throw new HttpError(413, 'the body is too large');
    chunks.push(b);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the body is not JSON');
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** 401 without a bearer token, 403 with a wrong one; compared in constant time. */
function checkAuth(req: IncomingMessage, token: string): void {
  const header = req.headers.authorization ?? '';
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  if (m?.[1] === undefined) throw new HttpError(401, 'no bearer token');
  if (!timingSafeEqual(digest(m[1]), digest(token))) throw new HttpError(403, 'invalid token');
}

function send(res: ServerResponse, a: Answer): void {
  if (a.text !== undefined) {
    res.writeHead(a.status, { 'content-type': 'text/plain' }).end(a.text);
  } else if (a.body === undefined) {
    res.writeHead(a.status).end();
  } else {
    res.writeHead(a.status, { 'content-type': 'application/json' }).end(JSON.stringify(a.body));
  }
}

async function dispatch(
  routes: readonly Route[],
  token: string | undefined,
  req: IncomingMessage,
): Promise<Answer> {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  let pathKnown = false;
  for (const route of routes) {
    const m = route.path.exec(path);
    if (m === null) continue;
    pathKnown = true;
    if (route.method !== req.method) continue;
    if (route.auth && token !== undefined) checkAuth(req, token);
    const body = await readBody(req);
    return route.handle({ params: m.slice(1), body, accept: req.headers.accept ?? '' });
  }
  throw new HttpError(pathKnown ? 405 : 404, `no route ${req.method} ${path}`);
}

export interface Listening {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
}

/** Serves `routes` on 127.0.0.1 (port 0 unless given); `token` undefined turns auth off. */
export async function listen(
  routes: readonly Route[],
  token: string | undefined,
  port = 0,
): Promise<Listening> {
  const server = createServer((req, res) => {
    dispatch(routes, token, req).then(
      (a) => send(res, a),
      (err: unknown) => {
        if (err instanceof HttpError)
          send(res, { status: err.status, body: { message: err.message } });
        else send(res, { status: 500, body: { message: String(err) } });
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  return {
    url: `http://127.0.0.1:${bound}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The API token as validator clients keep it (keymanager-oapi.yaml, info): a file holding the
 * hex of at least 256 bits. A given file that exists is read; one that does not is made with a
 * fresh token (0600), so a restarted fake keeps its token.
 */
export async function loadOrMakeToken(file: string): Promise<string> {
  const text = await readIfExists(file);
  if (text !== undefined) {
    const token = text.trim();
    if (!/^[0-9a-f]{64,}$/i.test(token)) throw new Error(`${file}: not a hex token of 256 bits`);
    return token;
  }
  const token = randomBytes(32).toString('hex');
  await writePrivateFile(file, `${token}\n`);
  return token;
}
