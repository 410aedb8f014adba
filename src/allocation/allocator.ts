// Allocate(pod, n) and UnallocateAllKeys(pod): the domain rules, over the store, with no HTTP.
// Every state change runs through the group committer (group-commit.ts): one at a time, and
// nothing else writes between reading the state and committing its batch. Each change of a
// record is one of the transitions in transitions.ts.

import { parseInterchange } from '../api/interchange.js';
import type { BeaconGate } from '../beacon/liveness.js';
import type { Clock, Monotonic } from '../clock.js';
import type { DepositRecord } from '../deposit/deposit-record.js';
import { PkmError } from '../errors.js';
import type { KdfPool } from '../keys/kdf-pool.js';
import type { KeySource, NewKey } from '../keys/source.js';
import { MetaKey } from '../store/buckets.js';
import type { KeyChange, StoreContract } from '../store/contract.js';
import type { KeyRecord } from '../store/records.js';
import { Cooling } from './cooling.js';
import { totalKeys } from './counts.js';
import { newKeysNever } from './exhausted.js';
import type { GroupCommitter } from './group-commit.js';
import { type HeartbeatResult, heartbeatIn, placeReportedIn } from './heartbeat.js';
import {
  type ImportOptions,
  type ImportResult,
  type ImportSource,
  importKeys,
} from './import-keys.js';
import type { Protection } from './interchange.js';
import { type DeleteOutcome, deleteKeysIn, exportedProtection } from './keymanager-delete.js';
import { DerivationLookahead } from './lookahead.js';
import { type NewKeysPolicy, newKeyRecords } from './new-keys.js';
import { pickOldest } from './pick.js';
import {
  type Allocation,
  type BeaconChain,
  handOut,
  type RootAuthority,
  type UploadResult,
  uploadProtectionIn,
} from './protection.js';
import { type ReleaseOptions, type ReleaseResult, releaseIn } from './release.js';
import { retireIn } from './retire.js';
import { allocationEvents, previousHolderChanges } from './reuse.js';
import type { Transaction } from './transaction.js';
import { editPod, handedTo, podChange } from './transitions.js';

/** A key seen live waits two epochs before it is checked again. */
const LIVE_HOLD_MS = 2 * 32 * 12 * 1000;
/**
 * A key a heartbeat claimed without a proof stays out of the pool at least this long (or the
 * reuse delay, if longer), from the last such claim: the reporter may run it and be proving it
 * (an EIP-2335 scrypt keystore takes about a second to open; a pod may hold 64).
 */
const CLAIM_HOLD_MS = 10 * 60_000;

export interface HeartbeatOptions {
  /** The reporter's pod UID, from its token. */
  readonly uid?: string | undefined;
  /** Keys whose proof of possession by the reporter was verified (keys/proof.ts). */
  readonly proven?: ReadonlySet<string>;
}

export interface AllocatorConfig {
  /** Released keys wait this long before another pod may get them (slashing safety). */
  readonly reuseDelayMs: number;
  readonly maxKeysPerPod: number;
  /** Upper bound on keys ever created; undefined means unlimited. */
  readonly maxTotalKeys: number | undefined;
  /** --new-keys (new-keys.ts); default `always`. */
  readonly newKeys?: NewKeysPolicy;
}

export type { Allocation, BeaconChain, HandedKey } from './protection.js';
export type { ReleaseOptions, StopProof } from './release.js';

/** What an allocation did, for metrics and logs (never secrets). */
export interface AllocationOutcome {
  readonly pod: string;
  readonly held: number;
  readonly reclaimed: number;
  readonly reused: number;
  readonly created: number;
}

export interface AllocatorDeps {
  readonly store: StoreContract;
  readonly clock: Clock;
  /** Elapsed time for cooling, fences and windows (clock.ts). */
  readonly monotonic: Monotonic;
  readonly keySource: KeySource;
  readonly config: AllocatorConfig;
  readonly beacon?: BeaconChain;
  /** The one writer: shared with everything else that changes the store (the depositor). */
  readonly group: GroupCommitter;
  /**
   * Send mode: new keys are deposited before any pod gets them. An allocation that needs new
   * keys asks for them here, outside the group, then takes them from the pool.
   */
  readonly depositor?: {
    provide(count: number, at?: readonly number[], maxTotalKeys?: number): Promise<void>;
  };
  /**
   * For this long after the start, no key that was held before goes to a pod other than its
   * own, and no key is derived from the mnemonic: holders first re-assert what they run
   * (heartbeats), and a key a holder reports moves the next index past it. Random new keys may
   * still be made: nobody can hold one the store never made.
   */
  readonly resyncWindowMs?: number;
  /**
   * The store was restored from a backup (backup.ts): nothing moves to another pod and nothing
   * is derived before a full reuse delay has passed, whatever the resync window.
   */
  readonly restored?: boolean;
  /** Indexes past the next one searched for a reported key (lookahead.ts). */
  readonly lookahead?: number;
  /** Called with keys a heartbeat found held by two pods (logged loudly, counted). */
  readonly onConflict?: (pod: string, pubkeys: readonly string[]) => void;
  /**
   * --beacon-url: cooled keys are checked not live before they move to another pod (and
   * retired if their validator is slashed, exited or withdrawn); a newly derived key is
   * checked not to be a validator already.
   */
  readonly liveness?: BeaconGate;
  /** Called with keys held back because the beacon node saw them live (an alert). */
  readonly onHeldBack?: (pubkeys: readonly string[]) => void;
  /** Called when the liveness gate could not answer: the keys stayed where they were. */
  readonly onGateFailure?: (err: unknown) => void;
  /** Called with keys fenced by a release (a forced deletion, a pod lost with its node). */
  readonly onFenced?: (pod: string, pubkeys: readonly string[]) => void;
  /** Called with heartbeat claims refused for want of a valid proof of possession. */
  readonly onRefused?: (pod: string, pubkeys: readonly string[]) => void;
  /** Called with keys pods reported that the store had no record of (flagged). */
  readonly onReported?: (pod: string, pubkeys: readonly string[]) => void;
  /** Deposit data for each new key, kept in the batch that records the key. */
  readonly makeDeposit?: (key: NewKey) => DepositRecord;
  readonly onAllocated?: (outcome: AllocationOutcome) => void;
  readonly onReleased?: (pod: string, released: number) => void;
}

/** What one pass of an allocation found under the lock. */
interface AllocateStep {
  readonly records: KeyRecord[];
  readonly outcome?: AllocationOutcome;
  /** Send mode: this many new keys must be deposited first. */
  readonly needsNew?: number;
  /** Cooled keys to ask the beacon node about first. */
  readonly needsCheck?: string[];
  /** A search for reported keys is running: derive nothing until it is done. */
  readonly needsSearch?: true;
  /** Derivation indexes to ask the beacon node about before deriving at them. */
  readonly needsIndexCheck?: number[];
}

/** What one pass of an allocation leaves its caller, besides its step. */
interface AllocateNote {
  /** What it fenced, to report once it is committed. */
  fenced?: ReleaseResult;
}

/** Pool reads one allocation makes at most, past keys it may not have yet (usablePool). */
const POOL_READS = 4;

export class Allocator {
  private readonly group: GroupCommitter;
  readonly cooling: Cooling;
  private readonly lookahead: DerivationLookahead;
  /**
   * Keys the beacon node saw live, or a heartbeat claimed without a proof yet: kept from every
   * pod until then (monotonic ms).
   */
  private readonly heldBack = new Map<string, number>();
  /** Searches for reported keys in flight; nothing is derived meanwhile. */
  private readonly searches = new Set<Promise<unknown>>();
  /**
   * A restored store: keys their holders re-asserted since the start. Until the restore's hold
   * is over, no other held key is handed out again, not even to its holder.
   */
  private readonly reasserted = new Set<string>();
  /** Derivation indexes the beacon node had no validator for, and those it had (--beacon-url). */
  private readonly clearIndexes = new Set<number>();
  private readonly validatorIndexes = new Set<number>();

  /** --max-keys-per-pod: no pod holds more, by allocation or by heartbeat. */
  get maxKeysPerPod(): number {
    return this.deps.config.maxKeysPerPod;
  }

  constructor(private readonly deps: AllocatorDeps) {
    this.group = deps.group;
    this.cooling = new Cooling({
      clock: deps.clock,
      monotonic: deps.monotonic,
      reuseDelayMs: deps.config.reuseDelayMs,
      resyncWindowMs: deps.resyncWindowMs ?? 0,
      restoreHoldMs: deps.restored ? deps.config.reuseDelayMs : 0,
    });
    this.lookahead = new DerivationLookahead(deps.keySource, deps.lookahead);
  }

  /** Keeps `pubkeys` from every pod for `ms` from now, or longer if held longer already. */
  private holdBack(pubkeys: readonly string[], ms: number): void {
    const until = this.cooling.now() + ms;
    for (const pk of pubkeys) this.heldBack.set(pk, Math.max(until, this.heldBack.get(pk) ?? 0));
  }

  private isHeldBack(pubkey: string): boolean {
    const until = this.heldBack.get(pubkey);
    return until !== undefined && until > this.cooling.now();
  }

  /** Held back here, or by a claim another server of a shared store heard (its record says). */
  private isHeld(r: KeyRecord): boolean {
    return this.isHeldBack(r.pubkey) || (r.heldUntil ?? 0) > this.deps.clock();
  }

  private heldBackNow(): string[] {
    const now = this.cooling.now();
    for (const [pk, until] of this.heldBack) if (until <= now) this.heldBack.delete(pk);
    return [...this.heldBack.keys()];
  }

  /** Gives `pod` exactly `count` keys, all or nothing; see DESIGN.md "HTTP API". */
  async allocate(pod: string, count: number, uid?: string): Promise<Allocation> {
    return this.allocateThen(pod, count, uid, (records) => this.handOut(pod, records));
  }

  /**
   * allocate() without the hand-out: the pod's pubkeys, its keys' secrets never opened here.
   * For KeyMoves, whose pods get their keys' secrets through their agent's assignment.
   */
  async allocateKeys(pod: string, count: number): Promise<string[]> {
    return this.allocateThen(pod, count, undefined, async (records) =>
      records.map((r) => r.pubkey),
    );
  }

  /** allocate()'s passes; `finish` makes the answer of the one that takes the keys. */
  private async allocateThen<T>(
    pod: string,
    count: number,
    uid: string | undefined,
    finish: (records: readonly KeyRecord[]) => Promise<T>,
  ): Promise<T> {
    const { maxKeysPerPod } = this.deps.config;
    if (!Number.isSafeInteger(count) || count < 1 || count > maxKeysPerPod) {
      throw new PkmError(
        'COUNT_OUT_OF_RANGE',
        `count must be an integer from 1 to ${maxKeysPerPod} (--max-keys-per-pod)`,
      );
    }
    // With deposits sent, new keys are made and mined first, then taken like any free key; other
    // pods may take them meanwhile, so ask a few times.
    // Cooled keys checked not live by the beacon node, for this request.
    const verified = new Set<string>();
    for (let attempt = 0; attempt < 6; attempt++) {
      const records = await this.allocatePass(pod, count, uid, verified, {});
      if (records) return await finish(records);
    }
    throw new PkmError('POOL_EXHAUSTED', 'the keys this pod could get kept moving; ask again', {
      retryAfter: 5,
    });
  }

  /** One pass of allocate(): the pod's records once it holds them, undefined to ask again. */
  private async allocatePass(
    pod: string,
    count: number,
    uid: string | undefined,
    verified: Set<string>,
    note: AllocateNote,
  ): Promise<readonly KeyRecord[] | undefined> {
    const step = await this.group.run(
      (tx) => this.allocateIn(tx, pod, count, uid, verified, note),
      { pods: [pod] },
    );
    if (note.fenced) this.afterRelease(pod, note.fenced);
    if (step.needsSearch) {
      await Promise.allSettled([...this.searches]);
      return undefined;
    }
    if (step.needsCheck !== undefined) {
      await this.checkLiveness(step.needsCheck, verified);
      return undefined;
    }
    if (step.needsIndexCheck !== undefined) {
      await this.checkIndexes(step.needsIndexCheck);
      return undefined;
    }
    if (step.needsNew === undefined || !this.deps.depositor) {
      this.cooling.left(step.records.map((r) => r.pubkey));
      if (step.outcome) this.deps.onAllocated?.(step.outcome);
      return step.records;
    }
    // With --beacon-url, derived keys whose index is a validator already are skipped first.
    const plan =
      this.deps.liveness && this.deps.keySource.indexed
        ? this.derivationPlan(this.deps.store.nextKeyIndex(), step.needsNew)
        : undefined;
    if (plan && 'unchecked' in plan) await this.checkIndexes(plan.unchecked);
    else
      await this.deps.depositor.provide(
        step.needsNew,
        plan?.indexes,
        this.deps.config.maxTotalKeys,
      );
    return undefined;
  }

  /**
   * UnallocateAllKeys: the pod's keys start cooling; idempotent. How the stop is known decides
   * who may have them back, and when (release.ts).
   */
  async release(pod: string, opts: ReleaseOptions = { stop: 'confirmed' }): Promise<string[]> {
    const result: ReleaseResult = await this.group.run((tx) =>
      releaseIn(tx, this.deps.clock(), pod, opts),
    );
    // A restored store may not know what this pod ran (model test, seed -834029122).
    if (opts.stop !== 'confirmed') this.cooling.extendRestoreHold();
    this.afterRelease(pod, result);
    return result.released;
  }

  /** Retires a key: it is never handed out again (see retire.ts). */
  async retire(pubkey: string, reason: string): Promise<KeyRecord> {
    const record = await this.group.run((tx) => retireIn(tx, this.deps.clock(), pubkey, reason));
    this.cooling.left([pubkey]);
    return record;
  }

  /**
   * The Keymanager API's DELETE (keymanager-delete.ts): retires each key no pod holds, in one
   * batch. A free or cooling key goes only as it could go to another pod: not held back, not
   * kept by a resync window or a restore's hold, and for a cooling key its reuse delay passed
   * on both clocks and, with --beacon-url, the gate (asked first, outside the lock) found it
   * not live.
   * Without a known genesis_validators_root nothing is retired (no protection can be exported).
   */
  async deleteKeys(pubkeys: readonly string[]): Promise<{
    outcomes: DeleteOutcome[];
    /** Per deleted or not_active key (once each), what leaves with it (EIP-3076). */
    protection: Map<string, Protection>;
    genesisValidatorsRoot: string | undefined;
  }> {
    const root = await this.genesisValidatorsRoot();
    const gate = await this.gateForDelete(pubkeys);
    const outcomes = await this.group.run((tx) =>
      deleteKeysIn(
        tx,
        {
          now: this.deps.clock(),
          poolHold: (r) => {
            if (this.isHeld(r))
              return 'a pod claimed to run it, or the beacon node saw it live, lately: another copy may still run it';
            // As in allocateIn: while holders re-assert (a start's resync window, a restore's
            // hold), a key a pod ever held stays put.
            const everHeld = r.history.some(
              (e) => e.event === 'allocated' || e.event === 'released',
            );
            if (this.cooling.resyncing() && everHeld)
              return `the server is resyncing (a start's window or a restore's hold): a pod may still run it; ask again in ${Math.ceil(this.cooling.resyncLeftMs() / 1000)} s (nothing was retired)`;
            if (r.state !== 'cooling') return undefined;
            if (!this.cooling.done(r))
              return `its last holder${r.pod === undefined ? '' : ` (pod ${r.pod})`} may still run it: it may leave once the reuse delay has passed, in ${Math.ceil(this.cooling.waitMs(r.since) / 1000)} s (nothing was retired)`;
            if (this.deps.liveness && !gate.verified.has(r.pubkey))
              return (
                gate.held.get(r.pubkey) ?? 'the liveness gate has not checked it yet: ask again'
              );
            return undefined;
          },
          noExport:
            root === undefined
              ? 'this server knows no genesis_validators_root, so no slashing protection can be exported with the key: start it with --network (or --genesis-validators-root); nothing was retired'
              : undefined,
        },
        pubkeys,
      ),
    );
    this.cooling.left(outcomes.filter((o) => o.status === 'deleted').map((o) => o.pubkey));
    const now = this.deps.clock();
    const protection = new Map<string, Protection>();
    for (const { pubkey, record } of outcomes)
      if (record !== undefined)
        protection.set(pubkey, exportedProtection(record, now, this.deps.beacon?.genesisTime));
    return { outcomes, protection, genesisValidatorsRoot: root };
  }

  /** With --beacon-url: why each cooled key the gate did not clear may not leave (fails closed). */
  private async gateForDelete(
    pubkeys: readonly string[],
  ): Promise<{ verified: Set<string>; held: Map<string, string> }> {
    const held = new Map<string, string>();
    const verified = new Set<string>();
    if (!this.deps.liveness) return { verified, held };
    const cooled = (await this.deps.store.getKeys([...new Set(pubkeys)]))
      .filter((r) => r.state === 'cooling' && this.cooling.done(r))
      .map((r) => r.pubkey);
    if (cooled.length === 0) return { verified, held };
    try {
      const views = await this.askGate((g) => g.statuses(cooled, this.deps.clock()));
      for (const pk of cooled) {
        const view = views?.get(pk);
        if (view === undefined) held.set(pk, 'the liveness gate gave no answer for it');
        else if (view.kind === 'live') {
          this.holdBack([pk], LIVE_HOLD_MS);
          held.set(pk, 'the beacon node saw it live: another copy may still run it');
        } else verified.add(pk);
      }
    } catch (err) {
      const why = `the liveness gate could not answer (${err instanceof Error ? err.message : String(err)}): it fails closed`;
      for (const pk of cooled) held.set(pk, why);
    }
    return { verified, held };
  }

  /**
   * Reconciles the keys a pod reports it runs (see heartbeat.ts). A key the store has no
   * record of is searched for among the indexes ahead; meanwhile nothing is derived. Keys in
   * `proven` carry a verified proof of possession by the reporter; any other claim is refused.
   */
  async heartbeat(
    pod: string,
    pubkeys: readonly string[],
    opts: HeartbeatOptions = {},
  ): Promise<HeartbeatResult> {
    const search = this.lookahead.enabled;
    const proven = opts.proven ?? new Set<string>();
    const { maxKeysPerPod } = this.deps.config;
    let done: () => void = () => undefined;
    /** The derivation pause this server wrote for its search (a shared store). */
    let paused: string | undefined;
    const searching = new Promise<void>((resolve) => {
      done = resolve;
    });
    try {
      const first = await this.group.run(async (tx) => {
        const step = await heartbeatIn(tx, this.deps.clock(), pod, pubkeys, {
          cooled: (r) => this.cooling.done(r),
          placeNow: !search,
          uid: opts.uid,
          reasserted: (pk) => this.reasserted.add(pk),
          proven,
          maxKeysPerPod,
          reuseDelayMs: this.deps.config.reuseDelayMs,
          held: (r) => this.isHeld(r),
        });
        // Registered under the lock: no allocation after this one derives before the search.
        // On a shared store the other servers' allocations too: the pause is written with it.
        if (search && step.result.unknown.length > 0) {
          this.searches.add(searching);
          if (tx.shared) paused = await pauseDerivation(tx, this.deps.clock() + SEARCH_PAUSE_MS);
        }
        // Held under the lock too: no allocation after this one hands them out. On a shared
        // store the hold goes into the records, in this commit, for every server to keep.
        const holdMs = Math.max(CLAIM_HOLD_MS, this.deps.config.reuseDelayMs);
        this.holdBack(step.holdable, holdMs);
        if (tx.shared) await holdInRecords(tx, step.holdable, this.deps.clock() + holdMs);
        return step;
      });
      let result = first.result;
      if (search && result.unknown.length > 0) {
        const asked = result.unknown;
        const found = await this.lookahead.find(asked, this.deps.store.nextKeyIndex());
        const placed = await this.group.run(async (tx) => {
          const done = await placeReportedIn(
            tx,
            this.deps,
            this.deps.clock(),
            pod,
            asked,
            { found, proven },
            maxKeysPerPod,
          );
          // The search is over: its pause goes, unless another server's search wrote a later
          // one meanwhile (checked by the store with the pause this server wrote).
          if (tx.shared) await endPause(tx, paused);
          return done;
        });
        const settled = new Set([...placed.reported, ...placed.conflicts, ...placed.refused]);
        result = {
          ...result,
          unknown: asked.filter((pk) => !settled.has(pk)),
          reported: [...result.reported, ...placed.reported],
          conflicts: [...result.conflicts, ...placed.conflicts],
          refused: [...result.refused, ...placed.refused],
        };
      }
      if (result.conflicts.length > 0) this.deps.onConflict?.(pod, result.conflicts);
      if (result.reported.length > 0) this.deps.onReported?.(pod, result.reported);
      if (result.refused.length > 0) this.deps.onRefused?.(pod, result.refused);
      this.cooling.left(result.reclaimed);
      this.cooling.released(result.stillCooling); // their reuse delay counts again from now
      return result;
    } finally {
      this.searches.delete(searching);
      done();
    }
  }

  /**
   * Records the UID of the pod that holds `pod`'s keys (the watcher sees it). A pod of another
   * UID than the recorded holder's is a new incarnation: the old one went without a word, so
   * the keys it held are fenced (release.ts), never the new one's. The new UID is recorded
   * then, so that keys the name gets next (a move's) are not fenced again as the old one's.
   */
  async recordUid(pod: string, uid: string): Promise<void> {
    const result = await this.group.run(async (tx) => {
      let before = await tx.getPod(pod);
      if (!before || before.keys.length === 0 || before.uid === uid) return undefined;
      let fenced: ReleaseResult | undefined;
      if (before.uid !== undefined) {
        fenced = await releaseIn(tx, this.deps.clock(), pod, { stop: 'forced', uid: before.uid });
        before = await tx.getPod(pod);
      }
      if (before)
        tx.stage({
          keys: [],
          pods: [podChange(pod, before, editPod(before, { uid }, before.since))],
        });
      return fenced;
    });
    if (result) this.afterRelease(pod, result);
  }

  private afterRelease(pod: string, result: ReleaseResult): void {
    this.cooling.released(result.released);
    if (result.released.length > 0) this.deps.onReleased?.(pod, result.released.length);
    if (result.fenced.length > 0) this.deps.onFenced?.(pod, result.fenced);
  }

  /** The UID recorded for the pod holding `pod`'s keys, if any. */
  async holderUid(pod: string): Promise<string | undefined> {
    return (await this.deps.store.getPod(pod))?.uid;
  }

  async podKeys(pod: string): Promise<string[]> {
    return [...((await this.deps.store.getPod(pod))?.keys ?? [])];
  }

  /**
   * Asks the beacon node, outside the lock, about these cooled keys. Live ones are held back
   * (another copy may still run); slashed, exited or withdrawn ones are retired (never handed
   * out again); the rest may move. The gate fails closed: if it cannot answer, the keys stay
   * where they are and the request fails.
   */
  private async checkLiveness(pubkeys: readonly string[], verified: Set<string>): Promise<void> {
    const views = await this.askGate((gate) => gate.statuses(pubkeys, this.deps.clock()));
    if (!views) return;
    const live: string[] = [];
    for (const pk of pubkeys) {
      const view = views.get(pk);
      if (view === undefined) throw gateError(new Error(`no answer for ${pk}`));
      if (view.kind === 'live') {
        this.holdBack([pk], LIVE_HOLD_MS);
        live.push(pk);
      } else if (view.kind === 'ended') {
        await this.retire(pk, `the beacon node reports validator ${view.index} ${view.status}`);
      } else verified.add(pk);
    }
    if (live.length > 0) this.deps.onHeldBack?.(live);
  }

  /**
   * Asks the beacon node whether the keys at these derivation indexes are validators already
   * (the same mnemonic used elsewhere, a store that lost its writes). Those indexes are skipped.
   */
  private async checkIndexes(indexes: readonly number[]): Promise<void> {
    const pubkeyAt = this.deps.keySource.pubkeyAt;
    if (!pubkeyAt) return;
    const byPubkey = new Map(indexes.map((i) => [pubkeyAt(i), i]));
    const views = await this.askGate((gate) =>
      gate.statuses([...byPubkey.keys()], this.deps.clock()),
    );
    if (!views) return;
    for (const [pk, i] of byPubkey) {
      const view = views.get(pk);
      if (view === undefined) throw gateError(new Error(`no answer for index ${i}`));
      // A key the store knows already (a pod reported it) is passed over like a validator.
      const taken = view.kind !== 'absent' || (await this.deps.store.getKey(pk)) !== undefined;
      (taken ? this.validatorIndexes : this.clearIndexes).add(i);
    }
  }

  private async askGate<T>(ask: (gate: BeaconGate) => Promise<T>): Promise<T | undefined> {
    const gate = this.deps.liveness;
    if (!gate) return undefined;
    try {
      return await ask(gate);
    } catch (err) {
      this.deps.onGateFailure?.(err);
      throw gateError(err);
    }
  }

  /**
   * With --beacon-url, the indexes to derive `count` keys at: from the next index on, past any
   * whose key is a validator already. Undefined with the indexes still to ask about.
   */
  private derivationPlan(
    from: number,
    count: number,
  ): { indexes: number[]; skipped: number[] } | { unchecked: number[] } {
    const indexes: number[] = [];
    const skipped: number[] = [];
    const unchecked: number[] = [];
    for (let i = from; indexes.length + unchecked.length < count; i++) {
      if (this.validatorIndexes.has(i)) skipped.push(i);
      else if (this.clearIndexes.has(i)) indexes.push(i);
      else unchecked.push(i);
    }
    return unchecked.length > 0 ? { unchecked } : { indexes, skipped };
  }

  private async allocateIn(
    tx: Transaction,
    pod: string,
    count: number,
    uid: string | undefined,
    verified: ReadonlySet<string>,
    note: AllocateNote,
  ): Promise<AllocateStep> {
    // A pass run again (its group raced another server's commit) starts over: it reports only
    // the fence it made itself.
    delete note.fenced;
    const now = this.deps.clock();
    let podBefore = await tx.getPod(pod);
    // A pod of another UID than the holder's is a new incarnation whose predecessor went
    // without a deletion the server saw (a missed webhook): its keys are fenced, never handed
    // to the newcomer.
    if (
      uid !== undefined &&
      podBefore?.uid !== undefined &&
      podBefore.uid !== uid &&
      podBefore.keys.length > 0
    ) {
      note.fenced = await releaseIn(tx, now, pod, { stop: 'forced', uid: podBefore.uid });
      podBefore = await tx.getPod(pod);
    }
    const held = podBefore?.keys ?? [];
    if (held.length > count) {
      throw new PkmError(
        'COUNT_MISMATCH',
        `pod ${pod} holds ${held.length} keys and asked for ${count}; release it first to hold fewer`,
      );
    }
    const reported = podBefore?.reported?.length ?? 0;
    if (count > held.length && count + reported > this.deps.config.maxKeysPerPod) {
      throw new PkmError(
        'COUNT_OUT_OF_RANGE',
        `pod ${pod} already runs ${reported} keys the store records as reported by it: with ${count} more it would pass --max-keys-per-pod (${this.deps.config.maxKeysPerPod})`,
      );
    }
    const need = count - held.length;
    const heldRecords = await tx.getKeys(held);
    this.refuseUnvouched(pod, held);
    if (need === 0) return { records: heldRecords };
    // The same name takes back at once only the cooling keys whose old holder is known to have
    // stopped (DESIGN.md "Safety rules"); unconfirmed and fenced ones wait like any other.
    const ownCooling = await tx.getKeys(podBefore?.cooling ?? []);
    for (const r of ownCooling) {
      if (r.state !== 'cooling' || r.pod !== pod) {
        throw tx.inconsistent(`pod ${pod} lists ${r.pubkey} as cooling, but the key is ${r.state}`);
      }
    }
    // Not a key another pod claimed to run meanwhile (its proof on the way): held from all.
    const reclaimed = ownCooling
      .filter((r) => r.stop === 'confirmed' && !this.isHeld(r))
      .slice(0, need);
    this.refuseUnvouched(
      pod,
      reclaimed.map((r) => r.pubkey),
    );
    const excluded = new Set([...reclaimed.map((r) => r.pubkey), ...this.heldBackNow()]);
    const pooled = await this.usablePool(tx, need - reclaimed.length, excluded);
    const createCount = need - reclaimed.length - pooled.length;
    // --new-keys never: refused before anything is staged, derived or deposited (and before the
    // beacon node is asked about cooled keys this request could not use in full anyway).
    if (createCount > 0 && this.deps.config.newKeys === 'never')
      await this.refuseNewKeys(tx, pod, count, held.length, need - createCount);
    // A cooled key that moves is first checked with the beacon node (if any), whoever asks.
    const unchecked = pooled.filter((r) => r.state === 'cooling' && !verified.has(r.pubkey));
    if (this.deps.liveness && unchecked.length > 0)
      return { records: [], needsCheck: unchecked.map((r) => r.pubkey) };
    await this.checkCanCreate(tx, createCount);
    if (createCount > 0 && this.deps.keySource.indexed) {
      // Derived keys wait while holders may still report what they run: an index they hold that
      // the store lost must move past before anyone is handed it.
      if (this.searches.size > 0) return { records: [], needsSearch: true };
      if (tx.shared) await refuseWhilePaused(tx, now);
      this.refuseWhileResyncing();
    }
    // Keys are only handed out once deposited: nothing is staged, the caller deposits first.
    if (createCount > 0 && this.deps.depositor) return { records: [], needsNew: createCount };
    let plan: { indexes: number[]; skipped: number[] } | undefined;
    if (createCount > 0 && this.deps.keySource.indexed && this.deps.liveness) {
      const planned = this.derivationPlan(tx.nextKeyIndex(), createCount);
      if ('unchecked' in planned) return { records: [], needsIndexCheck: planned.unchecked };
      plan = planned;
    }

    const keyChanges: KeyChange[] = [];
    const handed: KeyRecord[] = [...heldRecords];
    for (const r of reclaimed) {
      const after = handedTo(r, pod, now, 'reclaimed');
      keyChanges.push({ before: r, after });
      handed.push(after);
    }
    for (const r of pooled) {
      const after = handedTo(r, pod, now, 'allocated');
      keyChanges.push({ before: r, after });
      handed.push(after);
    }
    const created = await newKeyRecords(
      tx,
      this.deps,
      createCount,
      'allocated',
      now,
      plan?.indexes,
    );
    for (const base of created.records) {
      const after = handedTo(base, pod, now, 'allocated');
      keyChanges.push({ after });
      handed.push(after);
    }
    const podChanges = await previousHolderChanges(tx, pooled, now);
    const given = handed.slice(held.length).map((r) => r.pubkey);
    // A pod that held nothing is a new incarnation: its UID (from its token) replaces the old.
    const incarnation = held.length === 0;
    const after = editPod(
      podBefore,
      {
        hold: given,
        ...(uid === undefined ? { forgetUid: incarnation } : { uid }),
      },
      now,
    );
    podChanges.push(podChange(pod, podBefore, after));
    // The indexes used are recorded in the same batch as their keys: never derived twice.
    const { nextKeyIndex } = created;
    tx.stage({
      keys: keyChanges,
      pods: podChanges,
      ...(nextKeyIndex === undefined ? {} : { nextKeyIndex }),
      events: [
        ...allocationEvents(pod, now, handed.slice(held.length), pooled),
        ...(plan && plan.skipped.length > 0
          ? [
              {
                at: now,
                type: 'skip' as const,
                pod,
                pubkeys: [],
                detail: `derivation indexes ${plan.skipped.join(', ')} are validators already (beacon node): skipped`,
              },
            ]
          : []),
      ],
      ...this.restoreHoldEnds(),
    });
    return {
      records: handed,
      outcome: {
        pod,
        held: held.length,
        reclaimed: reclaimed.length,
        reused: pooled.length,
        created: createCount,
      },
    };
  }

  /** Once a restore's hold is over, the store's mark of it goes (in the next batch). */
  private restoreHoldEnds(): { meta?: Array<readonly [string, undefined]> } {
    return this.deps.restored && this.cooling.restoreHoldOver()
      ? { meta: [[MetaKey.restoredAt, undefined] as const] }
      : {};
  }

  /**
   * A restored store may show a key as this pod's that went to another pod after the backup:
   * in the restore's hold, a held key is handed out again only once its holder re-asserted it.
   */
  private refuseUnvouched(pod: string, pubkeys: readonly string[]): void {
    if (!this.deps.restored || this.cooling.restoreHoldOver()) return;
    if (pubkeys.every((pk) => this.reasserted.has(pk))) return;
    throw new PkmError(
      'RESYNCING',
      `the store was restored: pod ${pod}'s keys are handed out again once its agent re-asserts them (a heartbeat), or after a full reuse delay`,
      { retryAfter: Math.max(1, Math.ceil(this.cooling.resyncLeftMs() / 1000)) },
    );
  }

  private refuseWhileResyncing(): void {
    const left = this.cooling.resyncLeftMs();
    if (left <= 0) return;
    throw new PkmError(
      'RESYNCING',
      this.deps.restored
        ? 'the store was restored: no key is derived before a full reuse delay has passed, so that no index a running pod holds is handed out again'
        : 'the server just started: pods re-assert the keys they run before new keys are derived',
      { retryAfter: Math.max(1, Math.ceil(left / 1000)) },
    );
  }

  /**
   * Up to `n` pool keys this pod may have now, read on past those it may not have yet: a key
   * passed over is no reason to derive (and deposit) a new one while usable keys wait further
   * on. Passed over: in the resync window, keys held before stay put (their holders re-assert
   * first; keys no pod ever held may still go out: send mode's deposited keys wait there for
   * new pods), and keys held by a claim another server heard (shared store). A few reads at
   * most: a pool mostly of such keys is read no further.
   */
  private async usablePool(
    tx: Transaction,
    n: number,
    excluded: ReadonlySet<string>,
  ): Promise<KeyRecord[]> {
    const resyncing = this.cooling.resyncing();
    const usable = (r: KeyRecord) =>
      (!resyncing || !r.history.some((e) => e.event === 'allocated' || e.event === 'released')) &&
      (r.heldUntil ?? 0) <= this.deps.clock();
    const skip = new Set(excluded);
    const found: KeyRecord[] = [];
    for (let round = 0; round < POOL_READS && found.length < n; round++) {
      const want = n - found.length;
      const entries = await this.poolEntries(tx, want, skip);
      for (const r of await tx.getKeys(entries)) {
        if (r.state !== 'free' && r.state !== 'cooling') {
          throw tx.inconsistent(`the pool index lists ${r.pubkey}, but the key is ${r.state}`);
        }
        skip.add(r.pubkey);
        if (usable(r)) found.push(r);
      }
      if (entries.length < want) break; // the pool has no more
    }
    return found;
  }

  /** Up to `n` keys other pods may have: free keys and keys whose reuse delay has passed. */
  private async poolEntries(
    tx: Transaction,
    n: number,
    exclude: ReadonlySet<string>,
  ): Promise<string[]> {
    if (n <= 0) return [];
    // Over-read by the excluded count: this pod's own cooling keys sit in the same index.
    const [cooled, free] = await Promise.all([
      tx.oldest('cooling', n + exclude.size, this.cooling.wallCutoff()),
      tx.oldest('unallocated', n + exclude.size),
    ]);
    const eligible = cooled.filter((e) => !exclude.has(e.pubkey) && this.cooling.done(e));
    const unheld = free.filter((e) => !exclude.has(e.pubkey));
    return pickOldest(eligible, unheld, n).map((e) => e.pubkey);
  }

  /** --new-keys never and the pool cannot fill the request: POOL_EXHAUSTED (exhausted.ts). */
  private async refuseNewKeys(
    tx: Transaction,
    pod: string,
    count: number,
    held: number,
    available: number,
  ): Promise<never> {
    const c = tx.counts();
    const [oldest] = await tx.oldest('cooling', 1);
    throw newKeysNever({
      pod,
      count,
      held,
      available,
      free: c.free,
      cooling: c.cooling,
      coolingWaitMs: oldest ? this.cooling.waitMs(oldest.since) : undefined,
    });
  }

  private async checkCanCreate(tx: Transaction, n: number): Promise<void> {
    const max = this.deps.config.maxTotalKeys;
    if (n <= 0 || max === undefined) return;
    const c = tx.counts();
    const total = totalKeys(c);
    // On a shared store the database checks it again when the keys are written (another
    // server may make keys meanwhile): the bound travels with the change.
    if (total + n <= max) {
      tx.stage({ keys: [], pods: [], maxTotalKeys: max });
      return;
    }
    const [oldest] = await tx.oldest('cooling', 1);
    const waitMs = oldest ? this.cooling.waitMs(oldest.since) : undefined;
    throw new PkmError(
      'POOL_EXHAUSTED',
      `no free keys and --max-total-keys ${max} reached (${total} keys exist, ${n} more needed)`,
      waitMs === undefined ? {} : { retryAfter: Math.max(1, Math.ceil(waitMs / 1000)) },
    );
  }

  /**
   * Stores an EIP-3076 interchange for a pod's keys, key by key (see protection.ts). Without a
   * known genesis root, only `authority` decides whether this upload may fix it: a caller that
   * cannot tell is a pod, which never may.
   */
  async uploadProtection(
    pod: string,
    json: unknown,
    authority: RootAuthority = 'pod',
  ): Promise<UploadResult> {
    const interchange = parseInterchange(json);
    const result = await this.group.run((tx) =>
      uploadProtectionIn(tx, this.deps, pod, interchange, authority),
    );
    this.storedRoot = undefined; // the first upload may just have set it
    return result;
  }

  /**
   * Imports keystores (import-keys.ts) through the one committer. Fenced keys are noted on this
   * run's monotonic clock inside their batch, so a wall clock stepped forward cannot free them
   * before a full reuse delay.
   */
  async importKeys(
    pool: KdfPool,
    sources: readonly ImportSource[],
    opts: ImportOptions,
  ): Promise<ImportResult> {
    try {
      return await importKeys(
        {
          store: this.deps.store,
          group: this.group,
          clock: this.deps.clock,
          genesisValidatorsRoot: this.deps.beacon?.genesisValidatorsRoot,
          onFenced: (pubkeys) => this.cooling.released(pubkeys),
        },
        pool,
        sources,
        opts,
      );
    } finally {
      this.storedRoot = undefined; // an import with history may have fixed it
    }
  }

  /** The stored genesis root, read once: it only changes with an upload (above). */
  private storedRoot: Promise<string | undefined> | undefined;

  private genesisValidatorsRoot(): Promise<string | undefined> {
    const known = this.deps.beacon?.genesisValidatorsRoot;
    if (known !== undefined) return Promise.resolve(known);
    this.storedRoot ??= this.deps.store
      .getMeta(MetaKey.genesisValidatorsRoot)
      .catch((err: unknown) => {
        this.storedRoot = undefined; // a failed read is not remembered
        throw err;
      });
    return this.storedRoot;
  }

  /** Called as the pass's commit resolves, with no wait between: see protection.ts handOut. */
  private handOut(pod: string, records: readonly KeyRecord[]): Promise<Allocation> {
    return handOut(this.deps, pod, records, () => this.genesisValidatorsRoot());
  }
}

function gateError(err: unknown): PkmError {
  return err instanceof PkmError
    ? err
    : new PkmError('BEACON_UNAVAILABLE', 'the liveness gate could not ask the beacon node', {
        cause: err,
        retryAfter: 15,
      });
}

/** Writes a claim's hold into the records (a shared store), never shortening one. */
async function holdInRecords(
  tx: Transaction,
  pubkeys: readonly string[],
  until: number,
): Promise<void> {
  const records = await tx.getKeys(pubkeys);
  const keys = records
    .filter((r) => (r.heldUntil ?? 0) < until)
    .map((r) => ({ before: r, after: { ...r, heldUntil: until } }));
  if (keys.length > 0) tx.stage({ keys, pods: [] });
}

/** How long a search for reported keys pauses derivation on every server of a shared store. */
const SEARCH_PAUSE_MS = 15_000;

/** Writes the derivation pause until `until`, or leaves a later one; returns the value. */
async function pauseDerivation(tx: Transaction, until: number): Promise<string> {
  const stored = await tx.getMeta(MetaKey.derivationPause);
  const value = String(Math.max(Number(stored ?? 0), until));
  tx.stage({
    keys: [],
    pods: [],
    meta: [[MetaKey.derivationPause, value]],
    metaBefore: [[MetaKey.derivationPause, stored]],
  });
  return value;
}

/**
 * Ends this server's pause: removed if it is still the one written (so the search's own
 * change, which may move the index, passes too); a later one of another server's stays.
 */
async function endPause(tx: Transaction, paused: string | undefined): Promise<void> {
  if (paused === undefined) return;
  const stored = await tx.getMeta(MetaKey.derivationPause);
  if (stored !== paused) return;
  tx.stage({
    keys: [],
    pods: [],
    meta: [[MetaKey.derivationPause, undefined]],
    metaBefore: [[MetaKey.derivationPause, stored]],
  });
}

/** Another server searches for reported keys among the indexes ahead: nothing is derived. */
async function refuseWhilePaused(tx: Transaction, now: number): Promise<void> {
  const until = Number((await tx.getMeta(MetaKey.derivationPause)) ?? 0);
  if (until > now)
    throw new PkmError(
      'RESYNCING',
      'a server is looking for keys a pod reported among the derivation indexes ahead: new keys wait',
      { retryAfter: Math.max(1, Math.ceil((until - now) / 1000)) },
    );
}
