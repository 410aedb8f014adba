// One logger for the process. It is never handed a secret: routes log pods, counts and
// pubkeys only, and the serializers below drop request bodies and auth headers.
import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

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

const REDACTED_PATHS = SECRET_FIELDS.flatMap((f) => [f, `*.${f}`, `*.*.${f}`]);

/**
 * Logs go out in 4 KiB writes rather than one write per line: per-request lines are most of a
 * busy server's syscalls. Call flush() where a line must be out at once (the "listening" line,
 * shutdown); a kill -9 may lose the last few lines, never state.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { svc: 'pkm' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 }));
}

/** CLI commands keep stdout for their own output, so their logs go to stderr. */
export function createStderrLogger(level: LogLevel): Logger {
  return createLogger(level, pino.destination(2));
}
