// Send mode: new keys are deposited before any pod gets them. The steps, each safe to crash in:
//   1. the keys are stored in state `depositing` (with their deposit data) before any send;
//   2. each deposit transaction is signed locally and stored (hash, nonce, raw) before it is
//      broadcast, so a restart checks its receipt or broadcasts the very same transaction again:
//      never a second deposit for one key. The signing happens in one place only, `signIn`,
//      which runs inside the group committer (nothing else writes meanwhile), re-reads the key
//      there and signs only a key that is still `depositing` and holds no transaction; the
//      transaction is staged in the same step. So a key is signed at most once, however the
//      sender, the reconciler, a waiting request and a restart interleave; afterwards only its
//      one stored raw transaction is ever broadcast again;
//   3. a mined deposit makes its key free (into the pool); a reverted one leaves it
//      `deposit-failed`, kept for an operator.
// No step holds the allocation lock while it waits for the chain: steps 1 to 3 each commit
// through the group committer, and the waiting happens between them.
// Nonces: one sender at a time (`sending`) takes the next nonce inside `signIn`, and the counter
// moves on only once the signed transaction is stored. A transaction whose batch failed is
// dropped unsent and its nonce is used again; one the node refused leaves its key
// `deposit-failed` and its nonce to the next deposit; one stored but not (or not surely) sent
// keeps its nonce, and the reconciler broadcasts stored transactions again in nonce order, so
// the gap closes as soon as the RPC answers.
// Several servers (PostgreSQL): only the leader (store.leadership()) signs, sends and
// reconciles, so nonces come from one place; a signed transaction is written only while the
// leader lock is held (Change.leaderOnly, checked by the database), so a deposed leader signs
// nothing more. Any server makes new keys `depositing`; the leader learns of another server's
// from the audit log and sends them, while that server waits for them to be mined.
import pLimit from 'p-limit';
import type { Clock } from '../clock.js';
import { classifyError, type DepositChain, type Fees } from '../deposit/chain.js';
import type { SendConfig } from '../deposit/config.js';
import type { DepositRecord } from '../deposit/deposit-record.js';
import { PkmError } from '../errors.js';
import type { KeySource, NewKey } from '../keys/source.js';
import type { Logger } from '../log.js';
import { AuditEvent } from '../store/audit.js';
import type { StoreContract } from '../store/contract.js';
import type { DepositTx, KeyRecord } from '../store/records.js';
import { totalKeys } from './counts.js';
import type { GroupCommitter } from './group-commit.js';
import { newKeyRecords } from './new-keys.js';
import type { Transaction } from './transaction.js';
import { deposited, depositFailed, depositSigned } from './transitions.js';

export type DepositOutcome =
  | 'sent'
  | 'deposited'
  | 'reverted'
  | 'failed'
  | 'timeout'
  | 'unreachable';

export interface DepositorDeps {
  readonly store: StoreContract;
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
/** How often a server that does not lead looks whether the leader's deposits were mined. */
const FOLLOW_POLL_MS = 500;
const EVERY_EVENT_TYPE: ReadonlySet<string> = new Set(AuditEvent.shape.type.options);

export class Depositor {
  /**
   * A signature whose commit's outcome is unknown (the connection broke after COMMIT): its
   * nonce is taken if its transaction was stored (settleUnsureNonce).
   */
  private unsure: { pubkey: string; nonce: number } | undefined;
  /** Keys in state `depositing`, by pubkey: the only ones the reconciler looks at. */
  private readonly pending = new Set<string>();
  /** One sender at a time, so that nonces are handed out in order without gaps. */
  private readonly sending = pLimit(1);
  /**
   * Keys one worker (a `provide`, or the reconciler on one key) owns: nobody else sends,
   * broadcasts again or checks them meanwhile, so two senders never work on one key at once.
   */
  private readonly claimed = new Set<string>();
  /** The reconcile running now: a timer tick during a slow one joins it instead of racing it. */
  private reconciling: Promise<void> | undefined;
  private nextNonce = 0;
  private readonly recent: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** This server leads (see the top): it signs, sends and reconciles. */
  private leading = false;
  /** Bumped at each change of leadership: a lead() begun in an older term gives up. */
  private term = 0;
  private reconcileMs = RECONCILE_MS;
  private unwatch: (() => void) | undefined;
  /** The last audit event the leader read: new keys other servers made come after it. */
  private seenSeq = -1;
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

  /**
   * Leads at once when this server is the leader (a failure then fails the start), and from
   * then on whenever it becomes the leader; stops leading the moment it is not.
   */
  async start(reconcileMs = RECONCILE_MS): Promise<void> {
    this.reconcileMs = reconcileMs;
    const leadership = this.deps.store.leadership();
    if (leadership.isLeader) await this.lead(this.term);
    this.unwatch = leadership.watch((leader) => {
      if (!leader) this.follow();
      else if (!this.leading) void this.campaign();
    });
  }

  /** Leads, trying again while this server stays the leader and the chain does not answer. */
  private async campaign(): Promise<void> {
    const term = ++this.term;
    while (this.unwatch && term === this.term && this.deps.store.leadership().isLeader) {
      try {
        await this.lead(term);
        return;
      } catch (err) {
        this.deps.log.error({ err }, 'leader: the depositor could not start; trying again');
        await new Promise((resolve) => setTimeout(resolve, this.reconcileMs).unref());
      }
    }
  }

  /**
   * Finds deposits open (a previous leader's too), syncs the nonce, then leads: signs and
   * reconciles. Nothing is signed here before the nonce is synced.
   */
  private async lead(term: number): Promise<void> {
    // Inside `sending`, where every signature is taken: a send this server began in an earlier
    // term (it lost the lead and won it again while the send ran) ends before the reads below,
    // or waits until the nonce they give is set. Between the two it would take a nonce the sync
    // then hands out again, and a key's deposit could never be mined (deposit-failed).
    const leads = await this.sending(async () => {
      // Read the log's end first: a key made after it is in the log after it, one before in
      // the scan below.
      const [last] = await this.deps.store.lastEvents(EVERY_EVENT_TYPE, 1, 1);
      const seenSeq = last?.seq ?? -1;
      let highest = -1;
      const open: string[] = [];
      for await (const r of this.deps.store.keyRecords()) {
        if (r.state !== 'depositing') continue;
        open.push(r.pubkey);
        if (r.tx) highest = Math.max(highest, r.tx.nonce);
      }
      // Past every stored transaction, sent or not: a stored one is broadcast again, never
      // replaced, so its nonce is never handed out a second time.
      const nonce = Math.max(await this.deps.chain.pendingNonce(), highest + 1);
      this.balance = await this.deps.chain.balance().catch(() => undefined);
      if (term !== this.term || !this.deps.store.leadership().isLeader) return false; // deposed
      this.seenSeq = seenSeq;
      for (const pk of open) this.pending.add(pk);
      this.nextNonce = nonce;
      this.leading = true;
      return true;
    });
    if (!leads) return;
    // What a previous run left open is finished in the background, not before the server
    // listens: after a crash mid-burst behind a slow RPC that could take minutes. Requests
    // meanwhile are safe: they send only keys they made, and every signature goes through
    // `signIn`.
    const tick = () => {
      this.reconcile().catch((err: unknown) =>
        this.deps.log.warn({ err }, 'deposit reconcile failed'),
      );
    };
    tick();
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(tick, this.reconcileMs);
    this.timer.unref();
  }

  /** Not the leader (any more): the reconciler stops; what is open is the next leader's. */
  private follow(): void {
    this.term++;
    if (!this.leading) return;
    this.leading = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.pending.clear();
    this.deps.log.warn('not the leader: deposits are sent by the leader now');
  }

  stop(): void {
    this.unwatch?.();
    this.unwatch = undefined;
    this.leading = false;
    if (this.timer) clearInterval(this.timer);
    this.deps.chain.close();
  }

  /** Makes `count` new keys and deposits them; they are free in the pool when this returns. */
  async provide(count: number, at?: readonly number[], maxTotalKeys?: number): Promise<void> {
    this.checkRate(count);
    const created = await this.deps.group.run((tx) => this.createIn(tx, count, at, maxTotalKeys));
    const mine = created.map((r) => r.pubkey);
    if (!this.leading) {
      await this.awaitLeader(mine);
      return;
    }
    // Claimed before the reconciler can see them: it leaves them to this request until sent.
    for (const pk of mine) this.claimed.add(pk);
    for (const pk of mine) this.pending.add(pk);
    let sent: KeyRecord[];
    try {
      // Send in order (nonces), then wait for every receipt outside the sender.
      sent = [];
      for (const pk of mine) sent.push(await this.sending(() => this.send(pk)));
    } finally {
      for (const pk of mine) this.claimed.delete(pk);
    }
    const results = await Promise.allSettled(
      sent.map((r) => this.settle(r, this.deps.config.receiptTimeoutMs)),
    );
    const failure = results.find((r) => r.status === 'rejected');
    if (failure) throw failure.reason;
  }

  /** Checks open deposits: receipts, sends that never happened, the funder's balance. */
  reconcile(): Promise<void> {
    this.reconciling ??= this.reconcileOnce().finally(() => {
      this.reconciling = undefined;
    });
    return this.reconciling;
  }

  /**
   * Not the leader: the keys made here are the leader's to send (it finds them in the audit
   * log); waits until they are mined or failed, up to --receipt-timeout.
   */
  private async awaitLeader(pubkeys: readonly string[]): Promise<void> {
    const deadline = this.deps.clock() + this.deps.config.receiptTimeoutMs;
    for (;;) {
      const records = await this.deps.store.getKeys(pubkeys);
      const failed = records.find((r) => r.state === 'deposit-failed');
      if (failed)
        throw new PkmError(
          'DEPOSIT_REJECTED',
          `the deposit for ${failed.pubkey} failed: ${failed.depositError ?? 'see the leader'}`,
          { retryAfter: 60 },
        );
      if (records.every((r) => r.state !== 'depositing')) return;
      if (this.deps.clock() >= deadline) {
        this.emit('timeout');
        throw new PkmError(
          'DEPOSIT_TIMEOUT',
          'the new keys were not deposited within --receipt-timeout; the leader still sends them',
          { retryAfter: 30 },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    }
  }

  /** New keys other servers made since the last look (the leader sends them). */
  private async learnNewKeys(): Promise<void> {
    for (;;) {
      const events = await this.deps.store.events(this.seenSeq + 1, 500);
      for (const e of events) {
        this.seenSeq = Math.max(this.seenSeq, e.seq);
        if (e.type === 'deposit') for (const pk of e.pubkeys) this.pending.add(pk);
      }
      if (events.length < 500) return;
    }
  }

  private async reconcileOnce(): Promise<void> {
    if (!this.leading) return;
    await this.learnNewKeys();
    // Unknown when the node cannot say: an old balance would keep /readyz on a stale answer.
    this.balance = await this.deps.chain.balance().catch(() => undefined);
    const records = await this.deps.store.getKeys([...this.pending]);
    const open = records
      .filter((r) => r.state === 'depositing')
      .sort((a, b) => (a.tx?.nonce ?? Infinity) - (b.tx?.nonce ?? Infinity));
    for (const { pubkey } of open) {
      if (this.claimed.has(pubkey)) continue; // a sender works on it now
      this.claimed.add(pubkey);
      try {
        await this.reconcileKey(pubkey);
      } catch (err) {
        this.deps.log.warn({ err, pubkey }, 'deposit not reconciled; tried again later');
      } finally {
        this.claimed.delete(pubkey);
      }
    }
  }

  /** One open deposit, read afresh (the list above may be old by now). */
  private async reconcileKey(pubkey: string): Promise<void> {
    const r = await this.deps.store.getKey(pubkey);
    if (r?.state !== 'depositing') {
      this.pending.delete(pubkey);
      return;
    }
    if (!r.tx) {
      await this.sending(() => this.send(pubkey));
      return;
    }
    const status = await this.deps.chain.settled(r.tx.hash);
    if (status !== undefined) {
      await this.finish(r, status);
      return;
    }
    if (await this.deps.chain.known(r.tx.hash)) return; // pending: mined later
    // The node never saw it (the RPC was down, or the server died before the send): the same
    // signed transaction again, so at most one deposit exists for this key.
    try {
      await this.deps.chain.broadcast(r.tx.raw);
      this.deps.log.info({ pubkey, tx: r.tx.hash }, 'deposit broadcast again');
    } catch (err) {
      const kind = classifyError(err);
      if (kind === 'known') return;
      if (kind === 'nonce' && !(await this.deps.chain.known(r.tx.hash))) {
        // Its nonce went to another transaction of the funder (not this one: the node does
        // not know it), so it can never be mined. Kept for an operator, never signed again.
        await this.fail(r, `nonce ${r.tx.nonce} was taken by another transaction of the funder`);
        this.emit('failed');
        return;
      }
      throw err;
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

  /**
   * `at`: the derivation indexes to use (the allocator skips those whose key is a validator
   * already). If the next index moved past them meanwhile, nothing is made: the caller asks again.
   */
  private async createIn(
    tx: Transaction,
    count: number,
    at: readonly number[] | undefined,
    maxTotalKeys: number | undefined,
  ): Promise<KeyRecord[]> {
    if (at?.some((i) => i < tx.nextKeyIndex())) return [];
    if (maxTotalKeys !== undefined && totalKeys(tx.counts()) + count > maxTotalKeys)
      throw new PkmError(
        'POOL_EXHAUSTED',
        `--max-total-keys ${maxTotalKeys} reached while the new keys were being made; ask again`,
        { retryAfter: 5 },
      );
    const { records, nextKeyIndex } = await newKeyRecords(
      tx,
      this.deps,
      count,
      'depositing',
      this.deps.clock(),
      at,
    );
    tx.stage({
      keys: records.map((after) => ({ after })),
      pods: [],
      ...(nextKeyIndex === undefined ? {} : { nextKeyIndex }),
      ...(maxTotalKeys === undefined ? {} : { maxTotalKeys }),
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

  /**
   * Deposits one key unless it has a transaction already: checks the call, signs and stores the
   * transaction (`signIn`), then broadcasts it. Runs inside `sending`, with the key claimed.
   */
  private async send(pubkey: string): Promise<KeyRecord> {
    const { chain } = this.deps;
    const r = await this.deps.store.getKey(pubkey);
    if (!r) throw new PkmError('STORE_CORRUPT', `key ${pubkey} has no record`);
    // Deposited, failed, or signed already: nothing to sign (a stored transaction is only ever
    // broadcast again, by the reconciler).
    if (r.state !== 'depositing' || r.tx) return r;
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
    // If the batch fails, this throws: the transaction was not stored, so it is never sent, its
    // nonce is still free and the key still unsigned (the reconciler tries again). Unless the
    // connection broke after COMMIT was sent (STORE_UNAVAILABLE): then it may be stored, and
    // the next signature first reads this key again to learn whether its nonce was taken.
    const signing = { pubkey, nonce: this.nextNonce };
    const signed = await this.deps.group
      .run((tx) => this.signIn(tx, pubkey, fees))
      .catch((err) => {
        if (err instanceof PkmError && err.code === 'STORE_UNAVAILABLE') this.unsure = signing;
        throw err;
      });
    if (signed.signError !== undefined) throw await this.sendError(r, signed.signError);
    const sent = signed.tx;
    if (!sent) return signed.record;
    this.nextNonce = sent.nonce + 1;
    try {
      await chain.broadcast(sent.raw);
    } catch (err) {
      const kind = classifyError(err);
      if (kind === 'known') {
        // the node has it already: sent
      } else if (kind === 'unreachable') {
        // Maybe sent, maybe not: it keeps its nonce and the reconciler broadcasts it again.
        throw await this.sendError(signed.record, err);
      } else if (kind === 'nonce' && (await chain.known(sent.hash).catch(() => false))) {
        // Its own nonce is taken by this very transaction: another leader broadcast it (the
        // same stored bytes) first. Sent, not failed.
      } else if (kind === 'nonce') {
        // Another transaction of the funder took this nonce: this one can never be mined.
        // Count on from the node's view instead of failing every later deposit the same way.
        this.nextNonce = Math.max(
          this.nextNonce,
          await chain.pendingNonce().catch(() => this.nextNonce),
        );
        throw await this.sendError(signed.record, err);
      } else {
        // Refused by the node, so not in its pool: the next deposit takes the nonce (no gap).
        this.nextNonce = sent.nonce;
        throw await this.sendError(signed.record, err);
      }
    }
    this.emit('sent');
    this.deps.log.info({ pubkey, tx: sent.hash, nonce: sent.nonce }, 'deposit sent');
    return signed.record;
  }

  /**
   * The one place a deposit transaction is signed, inside the group committer: the key is read
   * again there, and signed only while it is `depositing` with no transaction stored; the
   * signed transaction is staged in the same step, so it is durable before anyone may send it.
   * Anything else returns the record as it is, unsigned.
   */
  private async signIn(
    tx: Transaction,
    pubkey: string,
    fees: Fees,
  ): Promise<{ record: KeyRecord; tx?: DepositTx; signError?: unknown }> {
    const [cur] = await tx.getKeys([pubkey]);
    if (!cur) throw new PkmError('STORE_CORRUPT', `key ${pubkey} has no record`);
    if (cur.state !== 'depositing' || cur.tx || !cur.deposit) return { record: cur };
    await this.settleUnsureNonce(tx);
    const nonce = this.nextNonce;
    let hash: string;
    let raw: string;
    try {
      ({ hash, raw } = await this.deps.chain.sign(cur.deposit, nonce, fees));
    } catch (err) {
      // Staged nothing: the caller fails the key outside the group.
      return { record: cur, signError: err };
    }
    const now = this.deps.clock();
    const stored: DepositTx = { hash, nonce, raw, sentAt: now };
    const after = depositSigned(cur, stored, now);
    tx.stage({
      keys: [{ before: cur, after }],
      pods: [],
      events: [{ at: now, type: 'deposit', pubkeys: [pubkey], detail: `deposit sent: ${hash}` }],
      // The nonce is the leader's to take: a deposed leader's signature is never stored.
      leaderOnly: true,
    });
    return { record: after, tx: stored };
  }

  /** Learns, inside the group, whether the last unsure signature was stored (its nonce taken). */
  private async settleUnsureNonce(tx: Transaction): Promise<void> {
    const unsure = this.unsure;
    if (!unsure) return;
    const [prev] = await tx.getKeys([unsure.pubkey]);
    if (prev?.tx?.nonce === unsure.nonce)
      this.nextNonce = Math.max(this.nextNonce, unsure.nonce + 1);
    this.unsure = undefined;
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
    const moved = await this.update(r, (cur) => deposited(cur, now));
    // A receipt seen twice (a waiting request and the reconciler) counts once.
    if (!moved) return;
    this.emit('deposited');
    this.deps.log.info({ pubkey: r.pubkey, tx: r.tx?.hash }, 'deposit mined: key is free');
  }

  private async fail(r: KeyRecord, reason: string): Promise<void> {
    const now = this.deps.clock();
    const moved = await this.update(r, (cur) => depositFailed(cur, reason, now));
    if (!moved) return;
    this.deps.log.error(
      { pubkey: r.pubkey, reason },
      'deposit failed: the key is kept as deposit-failed',
    );
  }

  /**
   * Moves a key out of `depositing` (mined, or failed) through the group committer, from its
   * current record, and only if that record still holds the transaction `seen` held (none, for
   * a failure before signing): a decision is applied only to the deposit it was made about, and
   * a receipt seen twice moves the key once. The change may not touch the stored transaction:
   * only `signIn` writes one, where there was none. Undefined when nothing changed.
   */
  private async update(
    seen: KeyRecord,
    change: (cur: KeyRecord) => KeyRecord,
  ): Promise<KeyRecord | undefined> {
    const { pubkey } = seen;
    const result = await this.deps.group.run(async (tx) => {
      const [cur] = await tx.getKeys([pubkey]);
      if (!cur) throw new PkmError('STORE_CORRUPT', `key ${pubkey} has no record`);
      if (cur.state !== 'depositing' || cur.tx?.hash !== seen.tx?.hash)
        return { cur, after: undefined };
      const after = change(cur);
      if (after.tx !== cur.tx)
        throw new PkmError('INTERNAL', `a stored deposit transaction is never replaced: ${pubkey}`);
      const detail =
        after.state === 'free' ? 'deposit mined' : `deposit failed: ${after.depositError ?? ''}`;
      tx.stage({
        keys: [{ before: cur, after }],
        pods: [],
        events: [{ at: this.deps.clock(), type: 'deposit', pubkeys: [pubkey], detail }],
      });
      return { cur, after };
    });
    if ((result.after ?? result.cur).state !== 'depositing') this.pending.delete(pubkey);
    return result.after;
  }
}
