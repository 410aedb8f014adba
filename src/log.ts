// One logger for the process. It is never handed a secret: routes log pods, counts and
// pubkeys only, and the serializers below drop request bodies and auth headers.
import { type DestinationStream, type Logger, pino } from 'pino';
import { PkmError } from './errors.js';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function parseLogLevel(value: string | undefined): LogLevel {
  const level = value ?? 'info';
  const known = LOG_LEVELS.find((l) => l === level);
  if (!known)
    throw new PkmError(
      'INVALID_CONFIG',
      `--log-level is one of ${LOG_LEVELS.join(', ')}, not "${level}", e.g. --log-level info`,
    );
  return known;
}

/**
 * A second line of defence: fields with these names are censored wherever they sit (at the
 * top, or one or two levels down), should code ever log an object that holds a secret.
 */
export const SECRET_FIELDS = [
  'secretKey',
  'secret',
  'privateKey',
  'password',
  'passphrase',
  'mnemonic',
  'token',
  'kek',
  'funderKey',
  'authorization',
  'cookie',
] as const;

// sonic-boom's types know only its default (utf8) mode; in its buffer mode (createLogger) it
// takes bytes.
declare module 'sonic-boom' {
  interface SonicBoom {
    write(data: Uint8Array): boolean;
  }
}

const REDACTED_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

/** Buffered lines go out at least this often. */
const FLUSH_EVERY_MS = 250;
/** A write once this much is buffered (at most WRITE_MAX_BYTES a write). */
const WRITE_AT_BYTES = 32 * 1024;
const WRITE_MAX_BYTES = 64 * 1024;

/**
 * Logs go out in writes of WRITE_AT_BYTES or more rather than one write per line: per-request
 * lines are most of a busy server's syscalls, and each asynchronous write wakes a thread of
 * libuv's pool, which costs the main thread more than the write itself on a busy machine. At
 * 4 KiB (about 19 request lines) bench/allocate made about one write per group commit; at 32
 * KiB, one per nine. What is buffered goes out within FLUSH_EVERY_MS all the same, so an alert (a
 * conflict, a refused claim, a fence) never waits for a kill to lose it; a kill -9 may lose the
 * last quarter second of lines, never state. (A flush asked for while a write is in flight is
 * dropped by sonic-boom, so flushing on each warning would lose lines.)
 *
 * The buffer holds each line as bytes (sonic-boom's buffer mode). In its default mode it
 * appends each line to one string and measures that string's bytes on every line, which
 * copies it whole: the 32 KiB buffered cost each request line about 16 KiB of copying and
 * garbage, the largest allocation of an allocation's request (bench/allocate, heap sampling).
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { svc: 'pkm' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  if (destination) return pino(options, destination);
  const buffered = pino.destination({
    dest: 1,
    sync: false,
    minLength: WRITE_AT_BYTES,
    maxWrite: WRITE_MAX_BYTES,
    contentMode: 'buffer',
  });
  setInterval(() => buffered.flush(), FLUSH_EVERY_MS).unref();
  // pino writes each line as a string; the buffer mode takes bytes.
  const lines: DestinationStream & { flush(cb?: (err?: Error) => void): void } = {
    write: (line: string) => buffered.write(Buffer.from(line)),
    flush: (cb) => buffered.flush(cb),
  };
  return pino(options, lines);
}

/** CLI commands keep stdout for their own output, so their logs go to stderr. */
export function createStderrLogger(level: LogLevel): Logger {
  return createLogger(level, pino.destination(2));
}
