import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkStore } from '../../src/store/check.js';
import { Store } from '../../src/store/store.js';
import { type AllocationBody, http, tempDir } from '../helpers.js';
import { TEST_MNEMONIC } from '../keys/vectors.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { startServerProcess } from './spawn.js';

const ROUNDS = 10;
const PODS = 40;

interface PodLog {
  /** Keys the server last acknowledged for the pod ([] after an acknowledged release). */
  acknowledged: string[];
  inFlight: boolean;
  acks: number;
  /** Acknowledged allocations (POSTs): keys handed out. */
  allocations: number;
  failures: string[];
}

/** Each pod allocates, tops up and releases in a loop until the server dies under it. */
async function churn(
  url: string,
  pod: string,
  log: PodLog,
  everHanded: Set<string>,
): Promise<void> {
  // Starts with a release: the pod may hold keys from the round before.
  const steps: Array<[string, number]> = [
    ['DELETE', 0],
    ['POST', 2],
    ['POST', 3],
    ['DELETE', 0],
    ['POST', 1],
  ];
  for (let round = 0; ; round++) {
    const [method, count] = steps[round % steps.length] ?? ['DELETE', 0];
    const path = `/v1/pods/${pod}/keys`;
    log.inFlight = true;
    let res: Awaited<ReturnType<typeof http<AllocationBody>>>;
    try {
      res = await http<AllocationBody>(
        url,
        method,
        path,
        method === 'POST' ? { count } : undefined,
      );
    } catch {
      return; // the server was killed: this request's outcome is unknown, and inFlight says so
    }
    // A live server must answer every one of these requests with 200.
    if (res.status !== 200)
      log.failures.push(`${method} ${path} -> ${res.status} ${JSON.stringify(res.body)}`);
    log.acknowledged = method === 'POST' ? res.body.keys.map((k) => k.pubkey) : [];
    for (const pk of log.acknowledged) everHanded.add(pk);
    log.inFlight = false;
    log.acks++;
    if (method === 'POST') log.allocations++;
  }
}

describe.each([
  ['random keys', false],
  ['keys derived from a mnemonic', true],
])('crash safety with %s', (_name, withMnemonic) => {
  it(`keeps every invariant after kill -9 at random moments (${ROUNDS} rounds)`, async () => {
    const dir = await tempDir();
    const mnemonicFile = join(dir, 'mnemonic');
    await writeFile(mnemonicFile, TEST_MNEMONIC);
    rememberSecret(TEST_MNEMONIC);
    const keyArgs = withMnemonic ? ['--mnemonic-file', mnemonicFile] : [];
    const data = join(dir, 'data');
    const everHanded = new Set<string>();
    for (let round = 0; round < ROUNDS; round++) {
      const server = await startServerProcess([
        '--data-dir',
        data,
        '--reuse-delay',
        '0',
        '--resync-window',
        '0',
        ...keyArgs,
      ]);
      const logs = new Map<string, PodLog>();
      const workers = Array.from({ length: PODS }, (_, i) => {
        const log: PodLog = {
          acknowledged: [],
          inFlight: false,
          acks: 0,
          allocations: 0,
          failures: [],
        };
        logs.set(`pod-${i}`, log);
        return churn(server.url, `pod-${i}`, log, everHanded);
      });
      // Kill at a random moment once the burst is under way: keys handed out, not releases
      // alone. The first round's keys are made first; on a loaded machine they took over the
      // 300 ms below, and every kill of a run landed before any allocation was answered.
      const acked = () => [...logs.values()].reduce((n, l) => n + l.acks, 0);
      const allocated = () => [...logs.values()].reduce((n, l) => n + l.allocations, 0);
      for (let i = 0; i < 1500 && allocated() === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, Math.random() * 300));
      server.proc.kill('SIGKILL');
      expect(await server.exited).toBe('SIGKILL');
      await Promise.all(workers);
      // The kill landed in the middle of the burst: requests had been answered, others were open.
      expect(acked()).toBeGreaterThan(0);
      expect([...logs.values()].flatMap((l) => l.failures)).toEqual([]);
      expect([...logs.values()].some((l) => l.inFlight)).toBe(true);

      const store = await Store.open(data);
      try {
        // Includes: each derivation index used once, all below the store's next index.
        const report = await checkStore(store);
        expect(report.problems).toEqual([]);
        if (withMnemonic) expect(store.nextKeyIndex()).toBe(report.keys);
        // No key lost: every key ever handed out is still in the store.
        for (const pk of everHanded) expect(await store.getKey(pk)).toBeDefined();
        // What the server acknowledged survived, wherever no later request was in flight.
        for (const [pod, log] of logs) {
          if (log.inFlight) continue;
          expect((await store.getPod(pod))?.keys ?? []).toEqual(log.acknowledged);
        }
      } finally {
        await store.close();
      }
    }
    expect(everHanded.size).toBeGreaterThan(0);
  }, 120_000);
});
