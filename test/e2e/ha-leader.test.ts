// Issue 15, point 5's third fault test, on the built CLI: three `pkm server --store
// postgres://… --deposit-mode send` processes on one database and one hardhat node, behind an
// RPC that answers late (each call 200 ms), so deposits are still being signed, sent and mined
// when the leader (the one server that sends: point 4) is killed with -9. Another server must
// take over within 15 s, and every key must end up deposited exactly once (DepositEvents on
// the chain), none lost, none left depositing. The same again when the process lives on but
// its lock session ends (point 4: "a leader that loses that connection stops this work at
// once"): the deposed leader's own requests and sends are still under way then. And a single
// server whose lock session ends again and again: it is elected again each time, with its own
// sends of the term before still under way.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Interface, Wallet } from 'ethers';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPOSIT_ABI } from '../../src/deposit/chain.js';
import { LEADER_LOCK } from '../../src/store/pg/leader.js';
import { type Chain, deploy, FUNDER_KEY, startChain } from '../chain/node.js';
import { type RpcProxy, startProxy } from '../chain/proxy.js';
import { tempDir, until } from '../helpers.js';
import { findPostgres, usePostgres } from '../support/postgres.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { checkEnd, readTables } from './ha-checks.js';
import { Fleet, newDatabase, sharedFiles } from './ha-fleet.js';
import { allocate, type ClientOptions, Ledger, type Op, runScripts } from './ha-pods.js';

const bins = await findPostgres();
const ADDRESS = '0xf93ee4cf8c6c40b329b0c0626f28333c132cf241';
const LEADS = 'leader: this server runs the once-only work';
const DEPOSED = 'leader no more: the once-only work stops here';
const REUSE_DELAY_MS = 500;
/** Pods wait for their deposits (up to --receipt-timeout 60s), and ask again after a 503. */
const CLIENT: ClientOptions = { requestTimeoutMs: 90_000, opDeadlineMs: 150_000 };
const events = new Interface(DEPOSIT_ABI);

let chain: Chain | undefined;
let proxy: RpcProxy | undefined;
beforeAll(async () => {
  chain = await startChain();
  proxy = await startProxy(chain.url);
}, 60_000);
afterAll(async () => {
  await proxy?.close();
  await chain?.stop();
});

function started(): { chain: Chain; proxy: RpcProxy } {
  if (!chain || !proxy) throw new Error('the chain is not started');
  return { chain, proxy };
}

/** DepositEvents the contract logged, counted by pubkey. */
async function depositsByKey(at: string): Promise<Map<string, number>> {
  const logs = await started().chain.provider.getLogs({ address: at, fromBlock: 0 });
  const byKey = new Map<string, number>();
  for (const log of logs) {
    const e = events.parseLog({ topics: [...log.topics], data: log.data });
    if (!e) continue;
    const pk = String(e.args.pubkey);
    byKey.set(pk, (byKey.get(pk) ?? 0) + 1);
  }
  return byKey;
}

/** The servers whose log says `what`, from line `from[i]` of server i's stdout on. */
function saying(fleet: Fleet, what: string, from: readonly number[] = []): number[] {
  return fleet.servers
    .map((s, i) => (s.stdout.slice(from[i] ?? 0).some((l) => l.includes(what)) ? i : -1))
    .filter((i) => i >= 0);
}

/** Ends the session holding the leader lock, as an admin or a failover would. */
async function endLockSession(url: string): Promise<number> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const res = await admin.query(
      `SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted
         AND classid = 0 AND objid = $1 AND objsubid = 1`,
      [LEADER_LOCK],
    );
    return res.rowCount ?? 0;
  } finally {
    await admin.end();
  }
}

/** Until the funder has sent nothing new for `ms` (false after 20 s of sending). */
async function funderQuiet(ms: number): Promise<boolean> {
  const funder = new Wallet(FUNDER_KEY).address;
  let last = -1;
  let since = Date.now();
  return until(async () => {
    const n = await started().chain.provider.getTransactionCount(funder, 'pending');
    if (n !== last) [last, since] = [n, Date.now()];
    return Date.now() - since >= ms;
  }, 20_000).then(
    () => true,
    () => false,
  );
}

const cluster = bins
  ? usePostgres(bins)
  : () => {
      throw new Error('no PostgreSQL');
    };

/** `n` send-mode servers on a new database and a new deposit contract, behind the slow RPC. */
async function sendFleet(n: number) {
  const { chain, proxy } = started();
  const funder = new Wallet(FUNDER_KEY).address;
  const nonceBefore = await chain.provider.getTransactionCount(funder, 'pending');
  const contract = await deploy(chain, 'TestDepositContract');
  proxy.delay(200);
  const url = await newDatabase(cluster(), 'pkm_leader');
  const { kekFile } = await sharedFiles();
  const funderFile = join(await tempDir(), 'funder.key');
  await writeFile(funderFile, `${FUNDER_KEY}\n`, { mode: 0o600 });
  rememberSecret(FUNDER_KEY);
  const fleet = await Fleet.start(n, [
    '--store',
    url,
    '--kek-file',
    kekFile,
    '--network',
    'custom',
    '--fork-version',
    '0x00000000',
    '--chain-id',
    '31337',
    '--deposit-contract',
    contract,
    '--withdrawal-address',
    ADDRESS,
    '--deposit-mode',
    'send',
    '--eth-rpc',
    proxy.url,
    '--funder-key-file',
    funderFile,
    '--deposit-reconcile-interval',
    '1s',
    '--receipt-timeout',
    '60s',
    '--max-deposits-per-hour',
    '1000',
    '--reuse-delay',
    `${REUSE_DELAY_MS}ms`,
    '--resync-window',
    '0',
    '--rate-limit',
    '0',
  ]);
  await until(() => saying(fleet, LEADS).length > 0, 15_000);
  const [leader, ...others] = saying(fleet, LEADS);
  expect(others).toEqual([]);
  if (leader === undefined) throw new Error('no leader');
  return { chain, funder, nonceBefore, contract, url, kekFile, fleet, leader };
}

type SendFleet = Awaited<ReturnType<typeof sendFleet>>;

/**
 * Once nothing is depositing and the funder is quiet: every key deposited exactly once and
 * free or allocated, every deposit for a stored key, every funder transaction a mined deposit,
 * every pod served (`pods` of them), and the store's checks clean. Returns what it counted.
 */
async function expectEachKeyDepositedOnce(at: SendFleet, ledger: Ledger, pods: number) {
  const { chain, funder, nonceBefore, contract, url, fleet } = at;
  await until(
    async () => [...(await readTables(url)).keys.values()].every((r) => r.state !== 'depositing'),
    60_000,
  );
  const quiet = await funderQuiet(4_000);
  const tables = await readTables(url);
  const logged = await depositsByKey(contract);
  const report = await checkEnd(fleet, url, ledger, REUSE_DELAY_MS);
  const sent = (await chain.provider.getTransactionCount(funder, 'pending')) - nonceBefore;
  const mined = (await chain.provider.getTransactionCount(funder, 'latest')) - nonceBefore;
  const deposits = [...logged.values()].reduce((a, b) => a + b, 0);
  const summary = {
    answers: ledger.tally(),
    keys: tables.keys.size,
    states: [...tables.keys.values()].reduce<Record<string, number>>(
      (n, r) => Object.assign(n, { [r.state]: (n[r.state] ?? 0) + 1 }),
      {},
    ),
    depositEvents: deposits,
    funderTxs: { sent, mined },
  };
  return {
    summary,
    verify: () => {
      expect(report.problems).toEqual([]);
      // Each deposit event for a key the store holds, and none twice.
      expect([...logged].filter(([, n]) => n !== 1)).toEqual([]);
      for (const pk of logged.keys()) expect(tables.keys.has(pk)).toBe(true);
      // Every key in the store deposited once, and free or allocated: none lost or stuck.
      const unsettled = [...tables.keys.values()].filter(
        (r) => !(r.state === 'free' || r.state === 'allocated') || logged.get(r.pubkey) !== 1,
      );
      expect(
        unsettled.map((r) => ({
          pubkey: r.pubkey,
          state: r.state,
          deposits: logged.get(r.pubkey) ?? 0,
          nonce: r.tx?.nonce,
          error: r.depositError,
        })),
      ).toEqual([]);
      expect(ledger.settledPods().size).toBe(pods);
      for (const keys of ledger.settledPods().values())
        for (const pk of keys) expect(logged.get(pk)).toBe(1);
      // Every funder transaction a deposit, all mined, no nonce skipped or left pending.
      expect({ sent, mined }).toEqual({ sent: deposits, mined: deposits });
      expect(quiet).toBe(true);
    },
  };
}

/** Every answer a 200 or a coded 503 with Retry-After (and a cut connection from `killed`). */
function expectCoded(ledger: Ledger, killed?: number): void {
  for (const a of ledger.attempts) {
    if (a.answer.kind === 'status' && a.answer.status === 200) continue;
    if (a.answer.kind === 'lost' && a.server === killed) continue;
    expect(a.answer).toMatchObject({ kind: 'status', status: 503 });
    expect(Number(a.answer.kind === 'status' ? a.answer.retryAfter : 0)).toBeGreaterThan(0);
  }
}

const podsAsking = (prefix: string, pods: number, count: number) =>
  new Map(
    Array.from({ length: pods }, (_, i): [string, Op[]] => [`${prefix}-${i}`, [allocate(count)]]),
  );

describe.skipIf(bins === undefined)('send mode on one database, the leader fails', () => {
  it.each<['kill' | 'session', string]>([
    ['kill', 'kill -9 of the leader process'],
    ['session', 'its lock session ended by the database, the process living on'],
  ])(
    'three servers, %s: %s mid-deposits: a leader again within 15 s, every key deposited exactly once',
    async (fault) => {
      const t0 = Date.now();
      const at = await sendFleet(3);
      const { fleet, leader, contract, url } = at;
      // 9 pods ask for 2 new keys each, 3 through each server: 18 deposits, sent one after
      // another by the leader (the others' keys too: it finds them in the audit log).
      const ledger = new Ledger();
      const running = runScripts(fleet, ledger, podsAsking('v', 9, 2), CLIENT);
      // The fault, with some deposits mined and others still to sign, send or mine.
      await until(async () => (await depositsByKey(contract)).size >= 4, 60_000);
      const linesBefore = fleet.servers.map((s) => s.stdout.length);
      const faultAt = Date.now();
      if (fault === 'kill') await fleet.kill(leader);
      else expect(await endLockSession(url)).toBe(1);
      const atFault = await readTables(url);
      const openAtFault = [...atFault.keys.values()].filter((r) => r.state === 'depositing');
      const minedAtFault = (await depositsByKey(contract)).size;

      // A deposed leader that lives says so at once (its lock connection ended).
      if (fault === 'session')
        await until(() => saying(fleet, DEPOSED, linesBefore).includes(leader), 5_000);
      const deposedMs = Date.now() - faultAt;
      await until(() => saying(fleet, LEADS, linesBefore).length > 0, 20_000);
      const takeoverMs = Date.now() - faultAt;
      const [successor, ...also] = saying(fleet, LEADS, linesBefore);
      expect(also).toEqual([]);
      // The successor sends: a deposit mined after the fault.
      await until(async () => (await depositsByKey(contract)).size > minedAtFault, 30_000);
      const firstDepositMs = Date.now() - faultAt;
      // New pods while the new leader finishes the old one's deposits: it sends new keys too.
      await Promise.all([running, runScripts(fleet, ledger, podsAsking('w', 3, 1), CLIENT)]);
      const podsDoneMs = Date.now() - faultAt;

      const end = await expectEachKeyDepositedOnce(at, ledger, 12);
      console.log(
        JSON.stringify({
          test: `leader fails (${fault})`,
          ms: Date.now() - t0,
          leader,
          successor,
          ...(fault === 'session' ? { deposedMs } : {}),
          takeoverMs,
          atFault: {
            mined: minedAtFault,
            depositing: openAtFault.length,
            signedNotSettled: openAtFault.filter((r) => r.tx !== undefined).length,
          },
          afterFault: { firstDepositMs, podsDoneMs },
          ...end.summary,
        }),
      );
      expect(takeoverMs).toBeLessThanOrEqual(15_000);
      // The fault hit deposits in flight.
      expect(openAtFault.length).toBeGreaterThan(0);
      end.verify();
      expectCoded(ledger, fault === 'kill' ? leader : undefined);
    },
    240_000,
  );

  it('one server whose lock session ends 4 times mid-deposits: elected again each time, every key deposited exactly once', async () => {
    const t0 = Date.now();
    const at = await sendFleet(1);
    const { fleet, contract, url } = at;
    const ledger = new Ledger();
    const running = runScripts(fleet, ledger, podsAsking('v', 12, 2), CLIENT);
    await until(async () => (await depositsByKey(contract)).size >= 2, 60_000);
    const reelectedMs: number[] = [];
    for (let blip = 0; blip < 4; blip++) {
      const linesBefore = fleet.servers.map((s) => s.stdout.length);
      const endedAt = Date.now();
      expect(await endLockSession(url)).toBe(1);
      await until(() => saying(fleet, LEADS, linesBefore).length > 0, 15_000);
      reelectedMs.push(Date.now() - endedAt);
      // Its sends under way again before the next blip.
      await new Promise((r) => setTimeout(r, 1_500));
    }
    await running;
    const end = await expectEachKeyDepositedOnce(at, ledger, 12);
    console.log(
      JSON.stringify({
        test: 'lock session blips',
        ms: Date.now() - t0,
        reelectedMs,
        ...end.summary,
      }),
    );
    end.verify();
    expectCoded(ledger);
  }, 240_000);
});
