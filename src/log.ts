// One logger for the process. It is never handed a secret: routes log pods, counts and
// pubkeys only, and the serializers below drop request bodies and auth headers.
import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { svc: 'pkm' },
    redact: {
      paths: ['req.headers.authorization', '*.secretKey', '*.secret'],
      censor: '[redacted]',
    },
  };
  return destination ? pino(options, destination) : pino(options);
}

/** CLI commands keep stdout for their own output, so their logs go to stderr. */
export function createStderrLogger(level: LogLevel): Logger {
  return createLogger(level, pino.destination(2));
}
