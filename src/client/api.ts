// A small JSON client for the CLI commands that talk to a running server.
import { isErrorCode, PkmError } from '../errors.js';

export interface ApiOptions {
  readonly server: URL;
  readonly timeoutMs?: number;
}

/** Sends one request; a coded error from the server comes back as the same PkmError code. */
export async function callServer(
  opts: ApiOptions,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const url = new URL(path, opts.server);
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
  } catch (cause) {
    const reason =
      cause instanceof Error
        ? cause.cause instanceof Error
          ? cause.cause.message
          : cause.message
        : String(cause);
    throw new PkmError('SERVER_UNREACHABLE', `cannot reach ${url.origin}: ${reason}`, { cause });
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    throw new PkmError(
      'SERVER_REFUSED',
      `${url.origin} answered ${res.status} with a body that is not JSON`,
    );
  }
  if (res.ok) return json;
  const err = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const message = typeof err?.message === 'string' ? err.message : `HTTP ${res.status}`;
  const retry = Number(res.headers.get('retry-after'));
  throw new PkmError(isErrorCode(err?.code) ? err.code : 'SERVER_REFUSED', `server: ${message}`, {
    ...(Number.isFinite(retry) && retry > 0 ? { retryAfter: retry } : {}),
  });
}
