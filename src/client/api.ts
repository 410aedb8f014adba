// A small JSON client for the CLI commands that talk to a running server.
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ErrorReading } from '../api/error.js';
import { ExitCode, errnoOf, PkmError } from '../errors.js';

export interface ApiOptions {
  readonly server: URL;
  readonly timeoutMs?: number;
  /** A bearer token, read at each call: kubelet refreshes a projected token in place. */
  readonly tokenFile?: string | undefined;
  /** PEM CA bundle that the server's certificate must chain to (default: the system's). */
  readonly caFile?: string | undefined;
}

/** Where a pod's projected ServiceAccount token (audience pkm) is mounted by default. */
export const DEFAULT_TOKEN_FILE = '/var/run/secrets/pkm/token';

async function readOptional(
  path: string | undefined,
  fallback: string | undefined,
  flag: string,
): Promise<Buffer | undefined> {
  try {
    if (path !== undefined) return await readFile(path);
    return fallback === undefined ? undefined : await readFile(fallback);
  } catch (err) {
    if (path === undefined) return undefined; // the default path: no token mounted
    const code = errnoOf(err) ?? 'unreadable';
    throw new PkmError('INVALID_CONFIG', `--${flag} ${path} cannot be read (${code})`);
  }
}

/** Node's codes for a certificate that does not verify (not for a server that is down). */
const UNTRUSTED = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME_INVALID/;

export interface Answer {
  readonly status: number;
  readonly retryAfter: string | undefined;
  readonly text: string;
}

/** One HTTP(S) request with a string body, read whole; rejects only when no answer came. */
export function send(
  url: URL,
  method: string,
  body: string | undefined,
  opts: ApiOptions,
  headers: Record<string, string>,
  ca: Buffer | undefined,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(url, {
      method,
      headers,
      ...(ca === undefined ? {} : { ca }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const retry = res.headers['retry-after'];
        resolve({
          status: res.statusCode ?? 0,
          retryAfter: Array.isArray(retry) ? retry[0] : retry,
          text: Buffer.concat(chunks).toString('utf8'),
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends one request; a coded error from the server comes back as the same PkmError code. */
export async function callServer(
  opts: ApiOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const url = new URL(path, opts.server);
  const token = (await readOptional(opts.tokenFile, DEFAULT_TOKEN_FILE, 'token-file'))
    ?.toString('utf8')
    .trim();
  const ca = await readOptional(opts.caFile, undefined, 'ca-file');
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = {
    ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
    ...(token ? { authorization: `Bearer ${token}` } : {}),
  };
  let res: Answer;
  try {
    res = await send(url, method, payload, opts, headers, ca);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    const code = errnoOf(cause) ?? '';
    if (UNTRUSTED.test(code))
      throw new PkmError(
        'SERVER_UNTRUSTED',
        `the certificate of ${url.origin} does not verify (${reason}): pass its CA with --ca-file`,
        { cause },
      );
    throw new PkmError('SERVER_UNREACHABLE', `cannot reach ${url.origin}: ${reason}`, { cause });
  }
  const text = res.text;
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined; // not JSON: told apart below by its status alone
  }
  if (res.status >= 200 && res.status < 300 && json !== undefined) return json;
  const err = ErrorReading.safeParse(json).data?.error;
  const message = err?.message ?? `HTTP ${res.status} from ${url.origin}`;
  const retry = Number(res.retryAfter);
  const refused = res.status >= 400 && res.status < 500;
  const code = err?.code ?? (refused ? 'SERVER_REFUSED' : 'SERVER_FAILED');
  throw new PkmError(code, `server: ${message}`, {
    ...(Number.isFinite(retry) && retry > 0 ? { retryAfter: retry } : {}),
    // Whatever its code, a 4xx is the server's refusal (exit 3); the same check failing
    // locally, before any request, is a usage error (exit 2).
    ...(refused ? { exit: ExitCode.refused } : {}),
  });
}
