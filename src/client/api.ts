// A small JSON client for the CLI commands that talk to a running server.
import { ExitCode, isErrorCode, PkmError } from '../errors.js';

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
    json = undefined; // not JSON: told apart below by its status alone
  }
  if (res.ok && json !== undefined) return json;
  const err = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  const message =
    typeof err?.message === 'string' ? err.message : `HTTP ${res.status} from ${url.origin}`;
  const retry = Number(res.headers.get('retry-after'));
  const refused = res.status >= 400 && res.status < 500;
  const code = isErrorCode(err?.code) ? err.code : refused ? 'SERVER_REFUSED' : 'SERVER_FAILED';
  throw new PkmError(code, `server: ${message}`, {
    ...(Number.isFinite(retry) && retry > 0 ? { retryAfter: retry } : {}),
    // Whatever its code, a 4xx is the server's refusal (exit 3); the same check failing
    // locally, before any request, is a usage error (exit 2).
    ...(refused ? { exit: ExitCode.refused } : {}),
  });
}
