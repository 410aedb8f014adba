// Every request's id, latency metric and log line, for the express app (app.ts) and for the
// allocation's shortcut past it (allocation-shortcut.ts) alike.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.js';
import { callerOf, describeCaller } from './auth.js';
import type { Metrics } from './metrics.js';

const REQUEST_ID = /^[\w.-]{1,64}$/;

/** What a finished request is labelled with: its route template and its pod, if any. */
export interface RequestLabels {
  readonly route: string;
  readonly pod: string | undefined;
}

/**
 * Gives each request an id (the caller's X-Request-Id, when it is a plain token) and, once it
 * is answered, observes its latency and logs one line. `labels` is asked at the end, when the
 * route is known.
 */
export function requestObserver(deps: { readonly metrics: Metrics; readonly log: Logger }) {
  // The request line holds only the scalars below, none of them a secret field, so it skips the
  // redaction walk: at 40 us a line, that walk was the largest single cost of an allocation.
  const requestLog = deps.log.child({}, { redact: { paths: [] } });
  return (req: IncomingMessage, res: ServerResponse, labels: () => RequestLabels): void => {
    const header = req.headers['x-request-id'];
    const id = typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
    res.setHeader('x-request-id', id);
    const start = process.hrtime.bigint();
    res.on('finish', () => {
      const { route, pod } = labels();
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      const method = req.method ?? '';
      deps.metrics.requests.observe({ method, route, status: String(res.statusCode) }, seconds);
      requestLog.info(
        {
          reqId: id,
          method,
          route,
          pod,
          caller: describeCaller(callerOf(res)),
          status: res.statusCode,
          ms: Math.round(seconds * 1000),
        },
        'request',
      );
    });
  };
}
