// The parse primitives every command's config is built from (server/config.ts,
// client/config.ts, the CLI): flag values as commander hands them over (PKM_* env already
// merged), checked one at a time. Each error names the flag to set and gives an example.
import { PkmError } from './errors.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** Raw flag values as commander hands them over (strings, or undefined when unset). */
export type RawFlags = Readonly<Record<string, unknown>>;

/** INVALID_CONFIG for one flag: what is wrong with it, and an example of a good value. */
export function bad(flag: string, why: string, example: string): PkmError {
  return new PkmError('INVALID_CONFIG', `--${flag} ${why}, e.g. --${flag} ${example}`);
}

/** A flag's value as text; undefined when unset or empty. */
export function text(raw: RawFlags, name: string): string | undefined {
  const v = raw[name];
  return v === undefined || v === '' ? undefined : String(v);
}

/** A boolean flag: commander hands over true, PKM_* env the text "true". */
export function on(raw: RawFlags, name: string): boolean {
  return raw[name] === true || raw[name] === 'true';
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "20m", "90s", "1h30m", "0": a duration in milliseconds. */
export function parseDuration(value: string, flag: string): number {
  const parts = [...value.matchAll(/(\d+)(ms|s|m|h|d)/g)];
  const whole = parts.map((p) => p[0]).join('');
  if (value === '0') return 0;
  if (parts.length === 0 || whole !== value)
    throw bad(flag, `takes a duration like 20m, 90s or 1h30m, not "${value}"`, '20m');
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] ?? ''] ?? Number.NaN), 0);
  if (!Number.isSafeInteger(ms)) throw bad(flag, `is too long: "${value}"`, '20m');
  return ms;
}

export function parseInteger(
  value: string,
  flag: string,
  min: number,
  max: number,
  example: string,
): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw bad(flag, `takes a whole number from ${min} to ${max}, not "${value}"`, example);
  }
  return n;
}

/** "127.0.0.1:8000", "[::1]:8000", "0.0.0.0:0" */
export function parseListen(value: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (host === undefined || !Number.isInteger(port) || port > 65535) {
    throw bad('listen', `takes host:port, not "${value}"`, '127.0.0.1:8000');
  }
  return { host, port };
}

/** The flag's name on the command line: maxDepositsPerHour -> max-deposits-per-hour. */
function flagName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function optionalInteger(
  raw: RawFlags,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const value = text(raw, name);
  return value === undefined
    ? undefined
    : parseInteger(value, flagName(name), min, max, String(min));
}

export function optionalDuration(raw: RawFlags, name: string): number | undefined {
  const value = text(raw, name);
  return value === undefined ? undefined : parseDuration(value, flagName(name));
}

/** A server URL for the CLI commands that talk to a running server. */
export function parseServerUrl(value: unknown): URL {
  if (typeof value !== 'string' || value === '')
    throw bad('server', 'is required', 'http://127.0.0.1:8000');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad('server', `is not a URL: "${value}"`, 'http://127.0.0.1:8000');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw bad('server', `must be http or https, not "${url.protocol}"`, 'https://pkm.pkm.svc:8000');
  }
  return url;
}

export function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined)
    throw bad(flag, `is one of ${allowed.join(', ')}, not "${value}"`, allowed[0] ?? '');
  return found;
}
