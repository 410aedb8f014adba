// Issue 15, point 5's fourth fault test, on the built CLI: three `pkm server --store
// postgres://…` processes on one database, which stops (pg_ctl stop -m fast: every session
// ended) in the middle of a burst and starts again 3 s later on the same data dir and port.
// Meanwhile every request gets an answer: 200, or a coded 503 with Retry-After, never a 500, a
// cut connection or a hang; afterwards the same server processes serve again, and nothing
// acknowledged is lost (ha-checks.ts).
import { describe, expect, it } from 'vitest';
import { onCleanup, until } from '../helpers.js';
import { findPostgres, startPostgres } from '../support/postgres.js';
import { checkEnd } from './ha-checks.js';
import { Fleet, newDatabase, sharedFiles } from './ha-fleet.js';
import {
  allocate,
  type ClientOptions,
  Ledger,
  label,
  type Op,
  release,
  runScripts,
} from './ha-pods.js';

const bins = await findPostgres();
const REUSE_DELAY_MS = 500;
const DOWN_MS = 3_000;
/** A request unanswered for 60 s hangs (generous: this machine's 2 cores are shared). */
const CLIENT: ClientOptions = { requestTimeoutMs: 60_000, opDeadlineMs: 120_000 };

describe.skipIf(bins === undefined)('three servers, the database restarts mid-burst', () => {
  it.each<['fast' | 'immediate', string]>([
    ['fast', 'stops'],
    ['immediate', 'crashes'],
  ])(
    'pg_ctl stop -m %s (it %s) and start: coded 503s with Retry-After while it is away, then the same servers recover and nothing acknowledged is lost',
    async (mode, _what) => {
      const t0 = Date.now();
      const cluster = await startPostgres(bins ?? { initdb: '', pgCtl: '' });
      onCleanup(() => cluster.stop());
      const db = cluster;
      const url = await newDatabase(cluster, 'pkm_restart');
      const { kekFile, mnemonicFile } = await sharedFiles();
      const fleet = await Fleet.start(3, [
        '--store',
        url,
        '--kek-file',
        kekFile,
        '--mnemonic-file',
        mnemonicFile,
        '--reuse-delay',
        `${REUSE_DELAY_MS}ms`,
        '--resync-window',
        '0',
        '--rate-limit',
        '0',
      ]);
      const pids = fleet.servers.map((s) => s.proc.pid);
      const ledger = new Ledger();
      const holding = Array.from({ length: 60 }, (_, i) => `h-${i}`);
      const released = Array.from({ length: 60 }, (_, i) => `r-${i}`);
      await runScripts(
        fleet,
        ledger,
        new Map([
          ...holding.map((p, i): [string, Op[]] => [p, [allocate(1 + (i % 3))]]),
          ...released.map((p): [string, Op[]] => [p, [allocate(2), release]]),
        ]),
        CLIENT,
      );
      await new Promise((r) => setTimeout(r, REUSE_DELAY_MS * 2));

      const scripts = new Map<string, Op[]>([
        ...holding.map((p, i): [string, Op[]] => [
          p,
          [release, allocate(1 + (i % 3)), release, allocate(2)],
        ]),
        ...released.map((p, i): [string, Op[]] => [
          p,
          [allocate(1 + ((i + 1) % 3)), release, allocate(3), release],
        ]),
      ]);
      const acksBefore = ledger.acks;
      const running = runScripts(fleet, ledger, scripts, CLIENT);
      while (ledger.acks - acksBefore < 120) await new Promise((r) => setTimeout(r, 5));
      const downAt = Date.now();
      await db.stopServer(mode);
      const stoppedAt = Date.now();
      // While it is away: not ready within one probe interval (2 s: store-probe.ts).
      const readyz = () =>
        Promise.all(fleet.servers.map(async (s) => (await fetch(`${s.url}/readyz`)).status));
      await until(async () => (await readyz()).every((status) => status === 503), 5_000);
      const unreadyMs = Date.now() - stoppedAt;
      await new Promise((r) => setTimeout(r, Math.max(0, stoppedAt + DOWN_MS - Date.now())));
      await db.startServer();
      const upAt = Date.now();
      await until(async () => (await readyz()).every((status) => status === 200), 30_000);
      const readyAgainMs = Date.now() - upAt;
      await running;

      const during = (a: { sentAt: number; answeredAt: number }) =>
        a.answeredAt >= downAt && a.sentAt <= upAt;
      const firstOkAfterUp = ledger.attempts
        .filter((a) => a.sentAt >= upAt && label(a.answer) === '200')
        .reduce((min, a) => Math.min(min, a.answeredAt - upAt), Number.POSITIVE_INFINITY);
      const report = await checkEnd(fleet, url, ledger, REUSE_DELAY_MS);
      console.log(
        JSON.stringify({
          test: `database restarts (${mode})`,
          ms: Date.now() - t0,
          stopMs: stoppedAt - downAt,
          downMs: upAt - downAt,
          unreadyMs,
          readyAgainMs,
          firstOkAfterUpMs: firstOkAfterUp,
          latencyMs: { all: ledger.latency(), whileDown: ledger.latency(during) },
          slowestWhileDown: ledger.attempts
            .filter(during)
            .sort((a, b) => b.answeredAt - b.sentAt - (a.answeredAt - a.sentAt))
            .slice(0, 3)
            .map((a) => ({
              sent: a.sentAt - downAt,
              ms: a.answeredAt - a.sentAt,
              server: a.server,
              answer: label(a.answer),
            })),
          answers: ledger.tally(),
          whileDown: ledger.tally(during),
          keys: report.keys,
          derived: report.derived,
        }),
      );

      // The restart hit the burst: requests were refused with STORE_UNAVAILABLE meanwhile.
      expect(ledger.tally(during)['503 STORE_UNAVAILABLE'] ?? 0).toBeGreaterThan(0);
      // Every answer a 200 or a coded 503 with Retry-After: no 500, no cut connection, no hang.
      for (const a of ledger.attempts) {
        if (label(a.answer) === '200') continue;
        expect(a.answer).toMatchObject({ kind: 'status', status: 503 });
        expect(['STORE_UNAVAILABLE', 'STORE_CONFLICT']).toContain(
          a.answer.kind === 'status' ? a.answer.code : undefined,
        );
        expect(Number(a.answer.kind === 'status' ? a.answer.retryAfter : 0)).toBeGreaterThan(0);
      }
      // The same processes serve again: none restarted, none died.
      expect(fleet.servers.map((s) => [s.proc.pid, s.proc.exitCode])).toEqual(
        pids.map((pid) => [pid, null]),
      );
      expect(report.problems).toEqual([]);
    },
    240_000,
  );
});
