import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Interface, keccak256, parseEther, Transaction, Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPOSIT_ABI } from '../../src/deposit/chain.js';
import { ExitCode } from '../../src/errors.js';
import { type Chain, deploy, FUNDER_KEY, rpc, startChain } from '../chain/node.js';
import { type RpcProxy, startProxy } from '../chain/proxy.js';
import {
  type AllocationBody,
  type AssignmentsBody,
  http,
  onCleanup,
  tempDir,
  until,
} from '../helpers.js';
import { runPkm, startServerProcess } from './spawn.js';

const ADDRESS = '0xf93ee4cf8c6c40b329b0c0626f28333c132cf241';
const events = new Interface(DEPOSIT_ABI);
let chain: Chain;
let proxy: RpcProxy;
let contract: string;
let closed: string;

beforeAll(async () => {
  chain = await startChain();
  proxy = await startProxy(chain.url);
  contract = await deploy(chain, 'TestDepositContract');
  closed = await deploy(chain, 'ClosedDepositContract');
}, 60_000);
afterAll(async () => {
  await proxy?.close();
  await chain?.stop();
});

async function keyFile(key: string): Promise<string> {
  const file = join(await tempDir(), 'funder.key');
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  return file;
}

async function sendServer(
  opts: {
    contract?: string;
    funderKey?: string;
    data?: string;
    rpc?: string;
    extra?: string[];
  } = {},
) {
  const data = opts.data ?? join(await tempDir(), 'data');
  const args = [
    '--data-dir',
    data,
    '--network',
    'custom',
    '--fork-version',
    '0x00000000',
    '--chain-id',
    '31337',
    '--deposit-contract',
    opts.contract ?? contract,
    '--withdrawal-address',
    ADDRESS,
    '--deposit-mode',
    'send',
    '--eth-rpc',
    opts.rpc ?? proxy.url,
    '--funder-key-file',
    await keyFile(opts.funderKey ?? FUNDER_KEY),
    '--deposit-reconcile-interval',
    '500ms',
    '--receipt-timeout',
    '20s',
    ...(opts.extra ?? []),
  ];
  return { data, args, server: await startServerProcess(args) };
}

/** DepositEvents the contract logged, by pubkey. */
async function depositEvents(
  at = contract,
): Promise<Map<string, { withdrawal_credentials: string; signature: string }[]>> {
  const logs = await chain.provider.getLogs({ address: at, fromBlock: 0 });
  const byKey = new Map<string, { withdrawal_credentials: string; signature: string }[]>();
  for (const log of logs) {
    const e = events.parseLog({ topics: [...log.topics], data: log.data });
    if (!e) continue;
    const list = byKey.get(e.args.pubkey as string) ?? [];
    list.push({
      withdrawal_credentials: e.args.withdrawal_credentials as string,
      signature: e.args.signature as string,
    });
    byKey.set(e.args.pubkey as string, list);
  }
  return byKey;
}

const counts = async (url: string) =>
  (await http<AssignmentsBody & { counts: Record<string, number> }>(url, 'GET', '/v1/assignments'))
    .body.counts;

describe('deposits sent to a real local EVM', () => {
  it('deposits 3 new keys for a pod: 3 DepositEvents, 3 x 32 ETH, and /v1/deposits matches', async () => {
    const before = await chain.provider.getBalance(contract);
    const { server } = await sendServer();
    const res = await http<AllocationBody>(server.url, 'POST', '/v1/pods/validator-0/keys', {
      count: 3,
    });
    expect(res.status).toBe(200);
    const pubkeys = res.body.keys.map((k) => k.pubkey);
    const logged = await depositEvents();
    const exported = (
      await http<Array<{ pubkey: string; withdrawal_credentials: string; signature: string }>>(
        server.url,
        'GET',
        '/v1/deposits?pod=validator-0',
      )
    ).body;
    expect(exported).toHaveLength(3);
    for (const pk of pubkeys) {
      const [event, ...more] = logged.get(pk) ?? [];
      expect(more).toEqual([]);
      const entry = exported.find((e) => `0x${e.pubkey}` === pk);
      expect(event).toEqual({
        withdrawal_credentials: `0x${entry?.withdrawal_credentials}`,
        signature: `0x${entry?.signature}`,
      });
      expect(event?.withdrawal_credentials).toBe(`0x010000000000000000000000${ADDRESS.slice(2)}`);
    }
    expect((await chain.provider.getBalance(contract)) - before).toBe(3n * parseEther('32'));
    expect(await counts(server.url)).toMatchObject({
      allocated: 3,
      depositing: 0,
      'deposit-failed': 0,
    });
  }, 60_000);

  it('sends concurrent deposits with distinct nonces', async () => {
    const { server } = await sendServer();
    const answers = await Promise.all(
      ['a', 'b', 'c'].map((p) =>
        http<AllocationBody>(server.url, 'POST', `/v1/pods/nonce-${p}/keys`, { count: 2 }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    const logs = await chain.provider.getLogs({ address: contract, fromBlock: 0 });
    const mine = new Set(answers.flatMap((a) => a.body.keys.map((k) => k.pubkey)));
    const nonces: number[] = [];
    for (const log of logs) {
      const e = events.parseLog({ topics: [...log.topics], data: log.data });
      if (!e || !mine.has(e.args.pubkey as string)) continue;
      nonces.push((await chain.provider.getTransaction(log.transactionHash))?.nonce ?? -1);
    }
    expect(nonces).toHaveLength(6);
    expect(new Set(nonces).size).toBe(6);
  }, 60_000);

  it('never holds up free keys and releases while a pod waits for its deposits to be mined', async () => {
    const { server } = await sendServer({ extra: ['--reuse-delay', '0', '--resync-window', '0'] });
    expect((await http(server.url, 'POST', '/v1/pods/seed/keys', { count: 1 })).status).toBe(200);
    await http(server.url, 'DELETE', '/v1/pods/seed/keys'); // one free key in the pool
    await rpc(chain, 'evm_setAutomine', [false]);
    let waiterDone = false;
    let waiting: Promise<{ status: number }> | undefined;
    try {
      // Needs 3: 1 free, and 2 new ones whose deposits now wait for a block.
      waiting = http(server.url, 'POST', '/v1/pods/waiter/keys', { count: 3 }).finally(() => {
        waiterDone = true;
      });
      const pendingTxs = async () =>
        (
          (await rpc(chain, 'eth_getBlockByNumber', ['pending', false])) as {
            transactions: string[];
          }
        ).transactions.length;
      await until(async () => (await pendingTxs()) === 2);
      const started = Date.now();
      const other = await http<AllocationBody>(server.url, 'POST', '/v1/pods/other/keys', {
        count: 1,
      });
      expect(other.status).toBe(200);
      expect((await http(server.url, 'DELETE', '/v1/pods/other/keys')).status).toBe(200);
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(waiterDone).toBe(false);
      await rpc(chain, 'evm_mine');
    } finally {
      await rpc(chain, 'evm_setAutomine', [true]);
    }
    expect((await waiting)?.status).toBe(200);
  }, 60_000);

  it('caps new deposits per hour (--max-deposits-per-hour) with 503 and Retry-After', async () => {
    const { server } = await sendServer({ extra: ['--max-deposits-per-hour', '2'] });
    const res = await http(server.url, 'POST', '/v1/pods/greedy/keys', { count: 3 });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('DEPOSIT_RATE_LIMITED');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await counts(server.url)).toMatchObject({ depositing: 0, allocated: 0, free: 0 });
    expect((await http(server.url, 'POST', '/v1/pods/modest/keys', { count: 2 })).status).toBe(200);
  }, 60_000);

  it('a deposit not mined in time: 503 DEPOSIT_TIMEOUT, the key still watched, then free once mined', async () => {
    const { server } = await sendServer({ extra: ['--receipt-timeout', '1s'] });
    await rpc(chain, 'evm_setAutomine', [false]);
    try {
      const res = await http(server.url, 'POST', '/v1/pods/slow/keys', { count: 1 });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('DEPOSIT_TIMEOUT');
      expect(res.headers.get('retry-after')).toBe('30');
      expect(await counts(server.url)).toMatchObject({ depositing: 1, allocated: 0 });
      await rpc(chain, 'evm_mine');
    } finally {
      await rpc(chain, 'evm_setAutomine', [true]);
    }
    await until(async () => (await counts(server.url)).free === 1);
    expect((await http(server.url, 'POST', '/v1/pods/slow/keys', { count: 1 })).status).toBe(200);
  }, 60_000);

  it('refuses to start against a chain of another id', async () => {
    const data = join(await tempDir(), 'data');
    const child = runPkm([
      'server',
      '--data-dir',
      data,
      '--listen',
      '127.0.0.1:0',
      '--network',
      'custom',
      '--fork-version',
      '0x00000000',
      '--chain-id',
      '1',
      '--deposit-contract',
      contract,
      '--withdrawal-address',
      ADDRESS,
      '--deposit-mode',
      'send',
      '--eth-rpc',
      chain.url,
      '--funder-key-file',
      await keyFile(FUNDER_KEY),
    ]);
    expect(await child.exited).toBe(ExitCode.usage);
    expect(child.stderr.join('')).toMatch(/serves chain id 31337, but the network's is 1/);
  });

  it('RPC down: 503 with Retry-After, no partial allocation; once it is back the key is deposited once and handed out', async () => {
    const { server } = await sendServer();
    proxy.down();
    const failed = await http(server.url, 'POST', '/v1/pods/validator-1/keys', { count: 1 });
    expect(failed.status).toBe(503);
    expect(failed.body.error.code).toBe('DEPOSIT_RPC_UNAVAILABLE');
    expect(failed.headers.get('retry-after')).toBe('15');
    expect((await http(server.url, 'GET', '/v1/pods/validator-1/keys')).body).toEqual({
      pod: 'validator-1',
      pubkeys: [],
    });
    expect(await counts(server.url)).toMatchObject({ depositing: 1, allocated: 0 });

    proxy.up();
    await until(async () => (await counts(server.url)).free === 1);
    const ok = await http<AllocationBody>(server.url, 'POST', '/v1/pods/validator-1/keys', {
      count: 1,
    });
    expect(ok.status).toBe(200);
    const pk = ok.body.keys[0]?.pubkey ?? '';
    expect((await depositEvents()).get(pk)).toHaveLength(1);
  }, 60_000);

  it('a reverting contract leaves the key deposit-failed, shown on /assignments and in /metrics', async () => {
    const { server } = await sendServer({ contract: closed });
    const res = await http(server.url, 'POST', '/v1/pods/validator-2/keys', { count: 1 });
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('DEPOSIT_REVERTED');
    expect((await http(server.url, 'GET', '/v1/pods/validator-2/keys')).body).toMatchObject({
      pubkeys: [],
    });
    expect(await counts(server.url)).toMatchObject({
      'deposit-failed': 1,
      allocated: 0,
      depositing: 0,
    });
    expect((await http<string>(server.url, 'GET', '/metrics')).body).toMatch(
      /^pkm_keys\{state="deposit-failed"\} 1$/m,
    );
    expect(await (await fetch(`${server.url}/assignments`)).text()).toMatch(
      /data-state="deposit-failed">1</,
    );
  }, 60_000);

  it('a funder without funds: /readyz fails, and the request is refused with DEPOSIT_FUNDS', async () => {
    const { server } = await sendServer({ funderKey: Wallet.createRandom().privateKey });
    const ready = await http(server.url, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.error.message).toMatch(/less than one deposit/);
    const res = await http(server.url, 'POST', '/v1/pods/validator-3/keys', { count: 1 });
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('DEPOSIT_FUNDS');
    expect(await counts(server.url)).toMatchObject({ 'deposit-failed': 1, allocated: 0 });
    expect((await http<string>(server.url, 'GET', '/metrics')).body).toMatch(
      /^pkm_funder_balance_eth 0$/m,
    );
  }, 60_000);

  it('the broadcast is lost: the one stored transaction is broadcast again, never a new one, with no nonce skipped', async () => {
    const { server } = await sendServer();
    const funder = new Wallet(FUNDER_KEY).address;
    const nonceBefore = await chain.provider.getTransactionCount(funder, 'pending');
    const seen = proxy.dropped.length;
    /** The signed deposits the proxy dropped, by pubkey. */
    const dropped = () => {
      const byKey = new Map<string, Set<string>>();
      for (const request of proxy.dropped.slice(seen)) {
        for (const [, raw] of request.matchAll(
          /"method":"eth_sendRawTransaction","params":\["(0x[0-9a-f]+)"\]/g,
        )) {
          const call = events.parseTransaction({ data: Transaction.from(raw ?? '').data });
          const pk = call?.args[0] as string;
          byKey.set(pk, (byKey.get(pk) ?? new Set()).add(raw ?? ''));
        }
      }
      return byKey;
    };
    proxy.drop('eth_sendRawTransaction');
    try {
      const res = await http(server.url, 'POST', '/v1/pods/lost-broadcast/keys', { count: 2 });
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe('DEPOSIT_RPC_UNAVAILABLE');
      // The reconciler (every 500 ms) tries again while the broadcasts are still lost.
      await until(() => [...dropped().values()].length === 2 && proxy.dropped.length - seen >= 5);
    } finally {
      proxy.drop(undefined);
    }
    await until(async () => (await counts(server.url)).free === 2);
    const ok = await http<AllocationBody>(server.url, 'POST', '/v1/pods/lost-broadcast/keys', {
      count: 2,
    });
    expect(ok.status).toBe(200);
    const signed = dropped();
    const logs = await chain.provider.getLogs({ address: contract, fromBlock: 0 });
    for (const { pubkey } of ok.body.keys) {
      // One signature per key, however often it was broadcast; and that one is what was mined.
      const raws = [...(signed.get(pubkey) ?? [])];
      expect(raws).toHaveLength(1);
      const mined = logs.filter(
        (log) =>
          events.parseLog({ topics: [...log.topics], data: log.data })?.args.pubkey === pubkey,
      );
      expect(mined.map((log) => log.transactionHash)).toEqual([keccak256(raws[0] ?? '0x')]);
    }
    // Two deposits, two nonces, none skipped: the deposits after these are not held up.
    expect(await chain.provider.getTransactionCount(funder, 'pending')).toBe(nonceBefore + 2);
  }, 60_000);

  it('kill -9 between send and receipt: after a restart the receipt is checked, nothing is sent twice', async () => {
    const first = await sendServer();
    await rpc(chain, 'evm_setAutomine', [false]);
    try {
      const pending = http(first.server.url, 'POST', '/v1/pods/validator-4/keys', {
        count: 1,
      }).catch(() => undefined);
      await until(
        async () =>
          (
            (await rpc(chain, 'eth_getBlockByNumber', ['pending', false])) as {
              transactions: string[];
            }
          ).transactions.length > 0,
      );
      first.server.proc.kill('SIGKILL');
      await first.server.exited;
      await pending;
      await rpc(chain, 'evm_mine');
    } finally {
      await rpc(chain, 'evm_setAutomine', [true]);
    }
    const again = await startServerProcess(first.args);
    await until(async () => (await counts(again.url)).free === 1);
    const res = await http<AllocationBody>(again.url, 'POST', '/v1/pods/validator-4/keys', {
      count: 1,
    });
    expect(res.status).toBe(200);
    expect((await depositEvents()).get(res.body.keys[0]?.pubkey ?? '')).toHaveLength(1);
    expect(await counts(again.url)).toMatchObject({
      allocated: 1,
      depositing: 0,
      'deposit-failed': 0,
    });
  }, 60_000);
});

/** The pubkeys /v1/deposits lists in one state. */
async function keysIn(url: string, state: string): Promise<string[]> {
  const entries = (await http<Array<{ pubkey: string }>>(url, 'GET', `/v1/deposits?state=${state}`))
    .body;
  return entries.map((e) => `0x${e.pubkey}`);
}

/**
 * Waits (up to 15 s) until the funder has sent nothing new for `ms`, so that a second deposit
 * still queued in the server lands before the test counts; false if it kept sending.
 */
async function funderQuiet(ms: number): Promise<boolean> {
  const funder = new Wallet(FUNDER_KEY).address;
  let last = -1;
  let since = Date.now();
  return until(async () => {
    const n = await chain.provider.getTransactionCount(funder, 'pending');
    if (n !== last) {
      last = n;
      since = Date.now();
    }
    return Date.now() - since >= ms;
  }, 15_000).then(
    () => true,
    () => false,
  );
}

/** A fresh deposit contract (its logs are this test's alone) behind an RPC that answers late. */
async function slowChain(delayMs: number): Promise<{ contract: string; rpc: string }> {
  const fresh = await deploy(chain, 'TestDepositContract');
  const slow = await startProxy(chain.url);
  onCleanup(() => slow.close());
  slow.delay(delayMs);
  return { contract: fresh, rpc: slow.url };
}

// Issue 11: sending one pod's keys took longer than the reconcile interval, and the reconciler
// sent a second deposit for keys whose transaction was not stored yet. Here every RPC call takes
// 300 ms, so each deposit takes over a second to send and every burst outlasts the 1 s interval.
describe('each key is deposited exactly once, with sends slower than the reconcile interval', () => {
  const SLOW = ['--deposit-reconcile-interval', '1s', '--receipt-timeout', '60s'];
  const ask = (url: string, wave: number, pods: number, count: number) =>
    Array.from({ length: pods }, (_, i) => `burst-${wave}-${i}`).map((p) =>
      http<AllocationBody>(url, 'POST', `/v1/pods/${p}/keys`, { count }).catch(() => undefined),
    );

  it('a burst of 12 new keys over 4 pods: one DepositEvent per key, every handed-out key deposited', async () => {
    const slow = await slowChain(300);
    const { server } = await sendServer({ ...slow, extra: SLOW });
    const answers = await Promise.all(ask(server.url, 0, 4, 3));
    expect(answers.map((a) => a?.status)).toEqual([200, 200, 200, 200]);
    await until(async () => (await counts(server.url)).depositing === 0, 20_000);
    const quiet = await funderQuiet(3_000);

    const logged = await depositEvents(slow.contract);
    const stored = await keysIn(server.url, 'allocated');
    expect(stored).toHaveLength(12);
    const handedOut = answers.flatMap((a) => a?.body.keys.map((k) => k.pubkey) ?? []);
    expect(new Set(handedOut)).toEqual(new Set(stored));
    const times = new Map([...logged].map(([pk, list]) => [pk, list.length]));
    // Every key exactly once, and nothing deposited for a key the store does not hold.
    expect(times).toEqual(new Map(stored.map((pk) => [pk, 1])));
    expect(await counts(server.url)).toMatchObject({ depositing: 0, 'deposit-failed': 0 });
    expect(quiet).toBe(true); // and nothing more on its way
  }, 45_000);

  it('kill -9 in the middle of a burst, a restart on the same data dir and a second burst: no key deposited twice', async () => {
    const slow = await slowChain(300);
    const first = await sendServer({ ...slow, extra: SLOW });
    const firstWave = ask(first.server.url, 0, 4, 3);
    // Killed once some deposits are mined and others are still to be signed or sent.
    await until(async () => (await depositEvents(slow.contract)).size >= 4, 20_000);
    first.server.proc.kill('SIGKILL');
    await first.server.exited;
    const beforeKill = (await Promise.all(firstWave)).filter((a) => a?.status === 200);

    // The restart finishes what the first run left open while new pods ask for more keys than
    // it left, so that new keys are made and sent while the reconciler runs.
    const restarted = Date.now();
    const again = await startServerProcess(first.args);
    // It serves while it finishes the open deposits (up to 8: some 10 s of RPC calls), not
    // only after them.
    expect(Date.now() - restarted).toBeLessThan(7_000);
    const answers = await Promise.all(ask(again.url, 1, 2, 4));
    expect(answers.map((a) => a?.status)).toEqual([200, 200]);
    await until(async () => (await counts(again.url)).depositing === 0, 20_000);
    const quiet = await funderQuiet(3_000);

    const logged = await depositEvents(slow.contract);
    const usable = [
      ...(await keysIn(again.url, 'free')),
      ...(await keysIn(again.url, 'allocated')),
    ];
    const all = [
      ...usable,
      ...(await keysIn(again.url, 'deposit-failed')),
      ...(await keysIn(again.url, 'depositing')),
    ];
    expect(all.length).toBeGreaterThanOrEqual(12);
    // At most once each, and only for keys the store holds.
    for (const [pk, list] of logged) {
      expect(all).toContain(pk);
      expect({ pk, times: list.length }).toEqual({ pk, times: 1 });
    }
    // Exactly once for every key a pod may get, and for every key a pod got, before the kill
    // or after it.
    for (const pk of usable)
      expect({ pk, times: logged.get(pk)?.length }).toEqual({ pk, times: 1 });
    for (const a of [...beforeKill, ...answers])
      for (const k of a?.body.keys ?? []) expect(logged.get(k.pubkey)).toHaveLength(1);
    expect(await counts(again.url)).toMatchObject({ depositing: 0, 'deposit-failed': 0 });
    expect(quiet).toBe(true);
  }, 60_000);
});
