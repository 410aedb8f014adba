// HTTP to a beacon node's standard API (ethereum/beacon-APIs, beacon-node-oapi.yaml). Every way
// a call can go wrong is a BEACON_UNAVAILABLE here or in the caller: the liveness gate fails
// closed (DESIGN.md "Safety rules"), so no answer is ever read as "no such validator".
import { PkmError } from '../errors.js';

/** Seconds a caller of a closed gate waits before asking again (Retry-After). */
export const BEACON_RETRY_AFTER_S = 15;

export function beaconUnavailable(message: string, cause?: unknown): PkmError {
  return new PkmError('BEACON_UNAVAILABLE', message, {
    retryAfter: BEACON_RETRY_AFTER_S,
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A status and, for a 2xx, the parsed JSON body. */
export interface BeaconAnswer {
  readonly status: number;
  /** The JSON body of a 2xx answer; undefined otherwise. */
  readonly body: unknown;
  /** For an error status: the node's own message (the spec's ErrorMessage), when it sent one. */
  readonly detail: string;
}

export class BeaconApi {
  /** The URL as messages and logs show it: without credentials. */
  readonly shown: string;
  private readonly origin: string;
  /** The path of --beacon-url without its trailing slashes: "" or e.g. "/beacon". */
  private readonly prefix: string;
  private readonly authorization: string | undefined;

  constructor(
    url: string,
    private readonly timeoutMs: number,
  ) {
    let base: URL;
    try {
      base = new URL(url);
    } catch {
      throw new PkmError(
        'INVALID_CONFIG',
        `--beacon-url is not a URL: "${url}", e.g. --beacon-url http://beacon:5052`,
      );
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:')
      throw new PkmError(
        'INVALID_CONFIG',
        `--beacon-url must be http or https, not "${base.protocol}", e.g. --beacon-url http://beacon:5052`,
      );
    if (base.search !== '' || base.hash !== '')
      throw new PkmError(
        'INVALID_CONFIG',
        '--beacon-url takes no query or fragment (a path prefix is kept), e.g. --beacon-url http://proxy:8080/beacon/',
      );
    this.origin = base.origin;
    this.prefix = base.pathname.replace(/\/+$/, '');
    this.shown = `${base.origin}${this.prefix}`;
    // fetch() refuses a URL with credentials: they go in an Authorization header instead.
    this.authorization =
      base.username === '' && base.password === ''
        ? undefined
        : `Basic ${Buffer.from(`${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`).toString('base64')}`;
  }

  /**
   * `path` is absolute from the API root ("/eth/v1/..."), appended to the path of --beacon-url.
   * (new URL("/eth/v1/...", base) would drop a prefix such as "/beacon": issue 11.)
   */
  url(path: string): string {
    return `${this.origin}${this.prefix}${path}`;
  }

  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<BeaconAnswer> {
    let res: Response;
    try {
      res = await fetch(this.url(path), {
        method,
        headers: {
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.authorization === undefined ? {} : { authorization: this.authorization }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        redirect: 'error',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      throw beaconUnavailable(
        `the beacon node at ${this.shown} does not answer ${method} ${path}: ${reasonOf(cause)}`,
        cause,
      );
    }
    let text: string;
    try {
      text = await res.text();
    } catch (cause) {
      throw beaconUnavailable(
        `the beacon node at ${this.shown} broke off its answer to ${method} ${path}`,
        cause,
      );
    }
    if (res.status < 200 || res.status > 299)
      return { status: res.status, body: undefined, detail: errorDetail(text) };
    try {
      return { status: res.status, body: JSON.parse(text) as unknown, detail: '' };
    } catch (cause) {
      throw beaconUnavailable(
        `the beacon node at ${this.shown} answered ${method} ${path} with something that is not JSON`,
        cause,
      );
    }
  }
}

function reasonOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // undici puts the socket's error (ECONNREFUSED, ENOTFOUND) in cause.
  const cause = err.cause;
  if (cause instanceof Error && cause.message !== '') return cause.message;
  return err.message;
}

/** The spec's ErrorMessage {code, message}, shortened; nothing for a body of another kind. */
function errorDetail(text: string): string {
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && 'message' in parsed) {
      const message = (parsed as { message: unknown }).message;
      if (typeof message === 'string') return message.slice(0, 200);
    }
  } catch {
    // Not JSON (a proxy's HTML page): nothing worth quoting.
  }
  return '';
}
