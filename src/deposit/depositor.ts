// Send mode: new keys are deposited before any pod gets them. The steps, each safe to crash in:
//   1. the keys are stored in state `depositing` (with their deposit data) before any send;
//   2. each deposit transaction is signed locally and stored (hash, nonce, raw) before it is
//      broadcast, so a restart checks its receipt or broadcasts the very same transaction again:
//      never a second deposit for one key;
//   3. a mined deposit makes its key free (into the pool); a reverted one leaves it
//      `deposit-failed`, kept for an operator.
// No step holds the allocation lock while it waits for the chain: steps 1 to 3 each commit
// through the group committer, and the waiting happens between them.
import pLimit from 'p-limit';
import type { Clock } from '../allocation/clock.js';
import type { GroupCommitter } from '../allocation/group-commit.js';
import { newKeyRecords } from '../allocation/new-keys.js';
import type { Transaction } from '../allocation/transaction.js';
import { PkmError } from '../errors.js';
import type { KeySource, NewKey } from '../keys/source.js';
import type { Logger } from '../log.js';
import type { KeyEvent, KeyRecord } from '../store/records.js';
import { withEvent } from '../store/records.js';
import type { Store } from '../store/store.js';
import { classifyError, type DepositChain, type Fees } from './chain.js';
import type { SendConfig } from './config.js';
import type { DepositRecord } from './deposit-data.js';

export type DepositOutcome =
  | 'sent'
  | 'deposited'
  | 'reverted'
  | 'failed'
  | 'timeout'
  | 'unreachable';

export interface DepositorDeps {
  readonly store: Store;
  readonly group: GroupCommitter;
  readonly chain: DepositChain;
  readonly keySource: KeySource;
  readonly makeDeposit: (key: NewKey) => DepositRecord;
  readonly config: SendConfig & { readonly amountGwei: number };
  readonly clock: Clock;
  readonly log: Logger;
}

const HOUR = 3_600_000;
const RECONCILE_MS = 10_000;

export class Depositor {
  /** Keys in state `depositing`, by pubkey: the only ones the reconciler looks at. */
  private readonly pending = new Set<string>();
  /** One sender at a time, so that nonces are handed out in order without gaps. */
  private readonly sending = pLimit(1);
  private nextNonce = 0;
  private readonly recent: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<(outcome: DepositOutcome) => void> = [];
  /** The funder's balance, in wei, as last read. */
  balance: bigint | undefined;

  /** Called with each deposit's outcome (for metrics). */
  onOutcome(listener: (outcome: DepositOutcome) => void): void {
    this.listeners.push(listener);
  }

  private emit(outcome: DepositOutcome): void {
    for (const l of this.listeners) l(outcome);
  }

  constructor(private readonly deps: DepositorDeps) {}

  /** Finds deposits a previous run left open, syncs the nonce, and starts reconciling. */
  async start(reconcileMs = RECONCILE_MS): Promise<void> {
    let highest = -1;
    for await (const r of this.deps.store.keyRecords()) {
      if (r.state !== 'depositing') continue;
      this.pending.add(r.pubkey);
      if (r.tx) highest = Math.max(highest, r.tx.nonce);
    }
    this.nextNonce = Math.max(await this.deps.chain.pendingNonce(), highest + 1);
    await this.reconcile();
    this.timer = setInterval(() => {
      this.reconcile().catch((err: unknown) =>
        this.deps.log.warn({ err }, 'deposit reconcile failed'),
      );
    }, reconcileMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.deps.chain.close();
  }

  /** Makes `count` new keys and deposits them; they are free in the pool when this returns. */
  async provide(count: number): Promise<void> {
    this.checkRate(count);
    const created = await this.deps.group.run((tx) => this.createIn(tx, count));
    for (const r of created) this.pending.add(r.pubkey);
    // Send in order (nonces), then wait for every receipt outside the sender.
    const sent = await this.sending(async () => {
      const out: KeyRecord[] = [];
      for (const r of created) out.push(await this.send(r));
      return out;
    });
    const results = await Promise.allSettled(
      sent.map((r) => this.settle(r, this.deps.config.receiptTimeoutMs)),
    );
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) throw failure.reason;
  }

  /** Checks open deposits: receipts, sends that never happened, the funder's balance. */
  async reconcile(): Promise<void> {
    this.balance = await this.deps.chain.balance().catch(() => this.balance);
    const records = await this.deps.store.getKeys([...this.pending]);
    const open = records
      .filter((r) => r.state === 'depositing')
      .sort((a, b) => (a.tx?.nonce ?? Infinity) - (b.tx?.nonce ?? Infinity));
    for (const r of open) {
      if (!r.tx) {
        await this.sending(() => this.send(r)).catch((err: unknown) =>
          this.deps.log.warn({ err, pubkey: r.pubkey }, 'deposit not sent'),
        );
        continue;
      }
      const status = await this.deps.chain.settled(r.tx.hash);
      if (status !== undefined) {
        await this.finish(r, status);
      } else if (!(await this.deps.chain.known(r.tx.hash))) {
        // The node never saw it (the RPC was down, or the server died before the send): the
        // same signed transaction again, so at most one deposit exists for this key.
        await this.deps.chain.broadcast(r.tx.raw).catch((err: unknown) => {
          if (!['known', 'nonce'].includes(classifyError(err))) throw err;
        });
        this.deps.log.info({ pubkey: r.pubkey, tx: r.tx.hash }, 'deposit broadcast again');
      }
    }
  }

  private checkRate(count: number): void {
    const now = this.deps.clock();
    while (this.recent.length > 0 && (this.recent[0] ?? 0) <= now - HOUR) this.recent.shift();
    const max = this.deps.config.maxDepositsPerHour;
    if (this.recent.length + count > max) {
      const wait = Math.ceil(
        ((this.recent[this.recent.length + count - max - 1] ?? now) + HOUR - now) / 1000,
      );
      throw new PkmError(
        'DEPOSIT_RATE_LIMITED',
        `--max-deposits-per-hour ${max} reached; new keys wait`,
        {
          retryAfter: Math.max(1, wait),
        },
      );
    }
    for (let i = 0; i < count; i++) this.recent.push(now);
  }

  private async createIn(tx: Transaction, count: number): Promise<KeyRecord[]> {
    const { records, nextKeyIndex } = await newKeyRecords(
      tx,
      this.deps,
      count,
      'depositing',
      this.deps.clock(),
    );
    tx.stage({
      keys: records.map((after) => ({ after })),
      pods: [],
      ...(nextKeyIndex === undefined ? {} : { nextKeyIndex }),
      events: [
        {
          at: this.deps.clock(),
          type: 'deposit',
          pubkeys: records.map((r) => r.pubkey),
          detail: 'new keys, to be deposited',
        },
      ],
    });
    return records;
  }

  /** Signs, stores the signed transaction, then broadcasts it. Runs inside `sending`. */
  private async send(r: KeyRecord): Promise<KeyRecord> {
    const { chain } = this.deps;
    const deposit = r.deposit;
    if (!deposit)
      throw new PkmError('STORE_CORRUPT', `key ${r.pubkey} is depositing without deposit data`);
    let reason: string | undefined;
    let fees: Fees;
    try {
      fees = await chain.fees();
      reason = await chain.simulate(deposit, fees);
    } catch (err) {
      throw await this.sendError(r, err);
    }
    if (reason !== undefined) {
      await this.fail(r, `the deposit contract refuses it: ${reason}`);
      this.emit('reverted');
      throw new PkmError('DEPOSIT_REVERTED', `the deposit for ${r.pubkey} reverts: ${reason}`, {
        retryAfter: 60,
      });
    }
    const nonce = this.nextNonce;
    let signed: { hash: string; raw: string };
    try {
      signed = await chain.sign(deposit, nonce, fees);
    } catch (err) {
      throw await this.sendError(r, err);
    }
    this.nextNonce = nonce + 1;
    const now = this.deps.clock();
    const withTx = await this.update(r.pubkey, (cur) => ({
      ...cur,
      tx: { hash: signed.hash, nonce, raw: signed.raw, sentAt: now },
      history: withEvent(cur.history, { at: now, event: 'deposit-sent' }),
    }));
    try {
      await chain.broadcast(signed.raw);
    } catch (err) {
      const kind = classifyError(err);
      if (kind !== 'known') {
        if (kind !== 'unreachable') this.nextNonce = nonce; // not taken: the next deposit reuses it
        throw await this.sendError(withTx, err);
      }
    }
    this.emit('sent');
    this.deps.log.info({ pubkey: r.pubkey, tx: signed.hash, nonce }, 'deposit sent');
    return withTx;
  }

  /** A send that failed: unreachable RPCs are retried later; anything else fails the key. */
  private async sendError(r: KeyRecord, err: unknown): Promise<PkmError> {
    const kind = classifyError(err);
    if (kind === 'unreachable') {
      this.emit('unreachable');
      return new PkmError(
        'DEPOSIT_RPC_UNAVAILABLE',
        'the execution-layer RPC does not answer; the deposit is retried',
        {
          retryAfter: 15,
          cause: err,
        },
      );
    }
    const reason =
      kind === 'funds'
        ? 'the funder cannot pay for the deposit'
        : `the RPC refused the deposit (${kind})`;
    await this.fail(r, reason);
    this.emit('failed');
    return new PkmError(
      kind === 'funds' ? 'DEPOSIT_FUNDS' : 'DEPOSIT_REJECTED',
      `${reason}: ${r.pubkey}`,
      {
        retryAfter: 60,
        cause: err,
      },
    );
  }

  /** Waits for the receipt, up to the timeout; the key stays `depositing` on a timeout. */
  private async settle(r: KeyRecord, timeoutMs: number): Promise<void> {
    const hash = r.tx?.hash;
    if (!hash) return;
    const deadline = this.deps.clock() + timeoutMs;
    for (;;) {
      let status: 0 | 1 | undefined;
      try {
        status = await this.deps.chain.settled(hash);
      } catch {
        status = undefined; // the RPC may come back before the deadline
      }
      if (status !== undefined) {
        await this.finish(r, status);
        if (status === 0)
          throw new PkmError('DEPOSIT_REVERTED', `the deposit ${hash} reverted on chain`, {
            retryAfter: 60,
          });
        return;
      }
      if (this.deps.clock() >= deadline) {
        this.emit('timeout');
        throw new PkmError(
          'DEPOSIT_TIMEOUT',
          `the deposit ${hash} was not mined within --receipt-timeout; it is still watched`,
          {
            retryAfter: 30,
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  private async finish(r: KeyRecord, status: 0 | 1): Promise<void> {
    if (status === 0) {
      await this.fail(r, 'the deposit transaction reverted');
      this.emit('reverted');
      return;
    }
    const now = this.deps.clock();
    await this.update(r.pubkey, (cur) => {
      const { depositError: _e, ...rest } = cur;
      return {
        ...rest,
        state: 'free',
        since: now,
        history: withEvent(cur.history, { at: now, event: 'deposited' }),
      };
    });
    this.pending.delete(r.pubkey);
    this.emit('deposited');
    this.deps.log.info({ pubkey: r.pubkey, tx: r.tx?.hash }, 'deposit mined: key is free');
  }

  private async fail(r: KeyRecord, reason: string): Promise<void> {
    const now = this.deps.clock();
    const event: KeyEvent = { at: now, event: 'deposit-failed' };
    await this.update(r.pubkey, (cur) => ({
      ...cur,
      state: 'deposit-failed',
      since: now,
      depositError: reason,
      history: withEvent(cur.history, event),
    }));
    this.pending.delete(r.pubkey);
    this.deps.log.error(
      { pubkey: r.pubkey, reason },
      'deposit failed: the key is kept as deposit-failed',
    );
  }

  /**
   * Changes one key through the group committer, from its current record, and only while it is
   * still `depositing`: a receipt seen twice (a waiting request and the reconciler) moves it once.
   */
  private update(pubkey: string, change: (cur: KeyRecord) => KeyRecord): Promise<KeyRecord> {
    return this.deps.group.run(async (tx) => {
      const [cur] = await tx.getKeys([pubkey]);
      if (!cur) throw new PkmError('STORE_CORRUPT', `key ${pubkey} has no record`);
      if (cur.state !== 'depositing') return cur;
      const after = change(cur);
      const detail =
        after.state === 'free'
          ? 'deposit mined'
          : after.state === 'deposit-failed'
            ? `deposit failed: ${after.depositError ?? ''}`
            : `deposit sent: ${after.tx?.hash ?? ''}`;
      tx.stage({
        keys: [{ before: cur, after }],
        pods: [],
        events: [{ at: this.deps.clock(), type: 'deposit', pubkeys: [pubkey], detail }],
      });
      return after;
    });
  }
}
