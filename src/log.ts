// One logger for the process. It is never handed a secret: routes log pods, counts and
// pubkeys only, and the serializers below drop request bodies and auth headers.
import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

/**
 * Logs go out in 4 KiB writes rather than one write per line: per-request lines are most of a
 * busy server's syscalls. Call flush() where a line must be out at once (the "listening" line,
 * shutdown); a kill -9 may lose the last few lines, never state.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { svc: 'pkm' },
    redact: {
      paths: ['req.headers.authorization', '*.secretKey', '*.secret'],
      censor: '[redacted]',
    },
  };
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 }));
}

/** CLI commands keep stdout for their own output, so their logs go to stderr. */
export function createStderrLogger(level: LogLevel): Logger {
  return createLogger(level, pino.destination(2));
}
