// Allocate(pod, n) and UnallocateAllKeys(pod): the domain rules, over the store, with no HTTP.
// Every state change runs through the group committer (group-commit.ts): one at a time, and
// nothing else writes between reading the state and committing its batch.

import type { LivenessGate } from '../beacon/liveness.js';
import type { DepositRecord } from '../deposit/deposit-data.js';
import { PkmError } from '../errors.js';
import type { KeySource, NewKey } from '../keys/source.js';
import { MetaKey } from '../store/buckets.js';
import type { KeyRecord, PodRecord, Protection } from '../store/records.js';
import { withEvent } from '../store/records.js';
import type { KeyChange, Store } from '../store/store.js';
import type { Clock } from './clock.js';
import { totalKeys } from './counts.js';
import { GroupCommitter } from './group-commit.js';
import { type HeartbeatResult, heartbeatIn } from './heartbeat.js';
import { parseInterchange } from './interchange.js';
import { newKeyRecords } from './new-keys.js';
import { pickOldest } from './pick.js';
import { handOut, uploadProtectionIn } from './protection.js';
import { retireIn } from './retire.js';
import { allocationEvents, previousHolderChanges } from './reuse.js';
import type { Transaction } from './transaction.js';

/** A key seen live waits two epochs before it is checked again. */
const LIVE_HOLD_MS = 2 * 32 * 12 * 1000;

/**
 * How the server knows that a pod's containers stopped (DESIGN.md "Safety rules"):
 *   - confirmed: the kubelet's own final DELETE, the watcher's last view of the pod terminal (or
 *     every container terminated), or the pod's own release;
 *   - unconfirmed: a graceful deletion; the keys cool, and the same name gets them back only
 *     once a confirmation follows;
 *   - forced: a DELETE with gracePeriodSeconds 0 from anyone but the kubelet, or a pod that
 *     vanished while its containers ran: the keys are fenced.
 */
export type StopProof = 'confirmed' | 'unconfirmed' | 'forced';

export interface ReleaseOptions {
  readonly stop: StopProof;
  /** The UID of the pod that stopped: a release for another incarnation changes nothing. */
  readonly uid?: string | undefined;
}

export interface AllocatorConfig {
  /** Released keys wait this long before another pod may get them (slashing safety). */
  readonly reuseDelayMs: number;
  readonly maxKeysPerPod: number;
  /** Upper bound on keys ever created; undefined means unlimited. */
  readonly maxTotalKeys: number | undefined;
}

export interface HandedKey {
  readonly pubkey: string;
  readonly secretKey: Uint8Array;
  readonly path?: string;
  /** Slashing protection the new holder must import first (EIP-3076, minimal form). */
  readonly protection?: Protection;
}

export interface Allocation {
  readonly pod: string;
  readonly keys: HandedKey[];
  /** genesis_validators_root for the keys' interchange, when known. */
  readonly genesisValidatorsRoot?: string;
}

/** The beacon chain the keys validate on, when the server knows it (--network). */
export interface BeaconChain {
  readonly genesisTime?: number | undefined;
  readonly genesisValidatorsRoot?: string | undefined;
}

/** What an allocation did, for metrics and logs (never secrets). */
export interface AllocationOutcome {
  readonly pod: string;
  readonly held: number;
  readonly reclaimed: number;
  readonly reused: number;
  readonly created: number;
}

export interface AllocatorDeps {
  readonly store: Store;
  readonly clock: Clock;
  readonly keySource: KeySource;
  readonly config: AllocatorConfig;
  readonly beacon?: BeaconChain;
  /** Shared with whatever else writes (the depositor); made here when absent. */
  readonly group?: GroupCommitter;
  /**
   * Send mode: new keys are deposited before any pod gets them. An allocation that needs new
   * keys asks for them here, outside the group, then takes them from the pool.
   */
  readonly depositor?: { provide(count: number): Promise<void> };
  /**
   * Until then (ms), no key that was held before goes to a pod other than its own: after a
   * start, holders first re-assert what they run (heartbeats). New keys may still be made.
   */
  readonly resyncUntil?: number;
  /** Called with keys a heartbeat found held by two pods (logged loudly, counted). */
  readonly onConflict?: (pod: string, pubkeys: readonly string[]) => void;
  /** --beacon-url: cooled keys are checked not live before they move to another pod. */
  readonly liveness?: LivenessGate;
  /** Called with keys held back because the beacon node saw them live (an alert). */
  readonly onHeldBack?: (pubkeys: readonly string[]) => void;
  /** Deposit data for each new key, kept in the batch that records the key. */
  readonly makeDeposit?: (key: NewKey) => DepositRecord;
  readonly onAllocated?: (outcome: AllocationOutcome) => void;
  readonly onReleased?: (pod: string, released: number) => void;
}

export class Allocator {
  private readonly group: GroupCommitter;
  /** Keys the beacon node saw live, kept from other pods until then (ms). */
  private readonly heldBack = new Map<string, number>();

  private heldBackAt(now: number): string[] {
    for (const [pk, until] of this.heldBack) if (until <= now) this.heldBack.delete(pk);
    return [...this.heldBack.keys()];
  }

  constructor(private readonly deps: AllocatorDeps) {
    this.group = deps.group ?? new GroupCommitter(deps.store);
  }

  /** Gives `pod` exactly `count` keys, all or nothing; see DESIGN.md "HTTP API". */
  async allocate(pod: string, count: number): Promise<Allocation> {
    const { maxKeysPerPod } = this.deps.config;
    if (!Number.isSafeInteger(count) || count < 1 || count > maxKeysPerPod) {
      throw new PkmError(
        'COUNT_OUT_OF_RANGE',
        `count must be an integer from 1 to ${maxKeysPerPod} (--max-keys-per-pod)`,
      );
    }
    // With deposits sent, new keys are made and mined first, then taken like any free key; other
    // pods may take them meanwhile, so ask a few times.
    // Cooled keys of other pods checked not live by the beacon node, for this request.
    const verified = new Set<string>();
    for (let attempt = 0; attempt < 4; attempt++) {
      const { records, outcome, needsNew, needsCheck } = await this.group.run((tx) =>
        this.allocateIn(tx, pod, count, verified),
      );
      if (needsCheck !== undefined) {
        await this.checkLiveness(needsCheck, verified);
        continue;
      }
      if (needsNew === undefined || !this.deps.depositor) {
        if (outcome) this.deps.onAllocated?.(outcome);
        return this.handOut(pod, records, await this.genesisValidatorsRoot());
      }
      await this.deps.depositor.provide(needsNew);
    }
    throw new PkmError(
      'POOL_EXHAUSTED',
      'new deposited keys were taken by other pods first; ask again',
      { retryAfter: 5 },
    );
  }

  /** UnallocateAllKeys: the pod's keys start cooling; idempotent. */
  async release(pod: string, opts: ReleaseOptions = { stop: 'confirmed' }): Promise<string[]> {
    const released = await this.group.run((tx) => this.releaseIn(tx, pod, opts));
    if (released.length > 0) this.deps.onReleased?.(pod, released.length);
    return released;
  }

  /** Retires a key: it is never handed out again (see retire.ts). */
  retire(pubkey: string, reason: string): Promise<KeyRecord> {
    return this.group.run((tx) => retireIn(tx, this.deps.clock(), pubkey, reason));
  }

  /** Reconciles the keys a pod reports it runs (see heartbeat.ts); conflicts are reported. */
  async heartbeat(pod: string, pubkeys: readonly string[]): Promise<HeartbeatResult> {
    const result = await this.group.run((tx) => heartbeatIn(tx, this.deps.clock(), pod, pubkeys));
    if (result.conflicts.length > 0) this.deps.onConflict?.(pod, result.conflicts);
    return result;
  }

  /** Records the UID of the pod that holds `pod`'s keys (the watcher sees it). */
  recordUid(pod: string, uid: string): Promise<void> {
    return this.group.run(async (tx) => {
      const before = await tx.getPod(pod);
      if (!before || before.keys.length === 0 || before.uid === uid) return;
      tx.stage({ keys: [], pods: [{ name: pod, before, after: { ...before, uid } }] });
    });
  }

  /** The UID recorded for the pod holding `pod`'s keys, if any. */
  async holderUid(pod: string): Promise<string | undefined> {
    return (await this.deps.store.getPod(pod))?.uid;
  }

  async podKeys(pod: string): Promise<string[]> {
    return (await this.deps.store.getPod(pod))?.keys ?? [];
  }

  /**
   * Asks the beacon node, outside the lock, whether these cooled keys were live lately. Live
   * ones are held back (another copy may still run); the rest may move.
   */
  private async checkLiveness(pubkeys: readonly string[], verified: Set<string>): Promise<void> {
    const gate = this.deps.liveness;
    if (!gate) return;
    const now = this.deps.clock();
    const live = new Set(await gate.live(pubkeys, now));
    for (const pk of pubkeys) {
      if (live.has(pk)) this.heldBack.set(pk, now + LIVE_HOLD_MS);
      else verified.add(pk);
    }
    if (live.size > 0) this.deps.onHeldBack?.([...live]);
  }

  private async allocateIn(
    tx: Transaction,
    pod: string,
    count: number,
    verified: ReadonlySet<string> = new Set(),
  ): Promise<{
    records: KeyRecord[];
    outcome?: AllocationOutcome;
    needsNew?: number;
    needsCheck?: string[];
  }> {
    const { clock } = this.deps;
    const now = clock();
    const podBefore = await tx.getPod(pod);
    const held = podBefore?.keys ?? [];
    if (held.length > count) {
      throw new PkmError(
        'COUNT_MISMATCH',
        `pod ${pod} holds ${held.length} keys and asked for ${count}; release it first to hold fewer`,
      );
    }
    const need = count - held.length;
    // A StatefulSet runs at most one pod per name, so the same name may take back its own
    // cooling keys at once (DESIGN.md "Safety rules").
    const ownCooling = podBefore?.cooling ?? [];
    const reclaim = ownCooling.slice(0, need);
    const excluded = new Set([...ownCooling, ...this.heldBackAt(now)]);
    const fromPool = await this.poolEntries(tx, need - reclaim.length, now, excluded);
    // One read for every record involved.
    const records = await tx.getKeys([...held, ...reclaim, ...fromPool]);
    const heldRecords = records.slice(0, held.length);
    if (need === 0) return { records: heldRecords };
    const reclaimed = records.slice(held.length, held.length + reclaim.length);
    // In the resync window, keys held before stay put (their holders re-assert first); keys no
    // pod ever held, and new keys, may still go out.
    const resyncing = now < (this.deps.resyncUntil ?? 0);
    const pooled = records
      .slice(held.length + reclaim.length)
      .filter(
        (r) =>
          !resyncing || !r.history.some((e) => e.event === 'allocated' || e.event === 'released'),
      );
    for (const r of reclaimed) {
      if (r.state !== 'cooling' || r.pod !== pod) {
        throw new PkmError(
          'STORE_CORRUPT',
          `pod ${pod} lists ${r.pubkey} as cooling, but the key is ${r.state}`,
        );
      }
    }
    for (const r of pooled) {
      if (r.state !== 'free' && r.state !== 'cooling') {
        throw new PkmError(
          'STORE_CORRUPT',
          `the pool index lists ${r.pubkey}, but the key is ${r.state}`,
        );
      }
    }
    // A cooled key that moves to another pod is first checked with the beacon node (if any).
    const unchecked = pooled.filter(
      (r) => r.state === 'cooling' && r.pod !== pod && !verified.has(r.pubkey),
    );
    if (this.deps.liveness && unchecked.length > 0)
      return { records: [], needsCheck: unchecked.map((r) => r.pubkey) };
    const createCount = need - reclaimed.length - pooled.length;
    await this.checkCanCreate(tx, createCount, now);
    // Keys are only handed out once deposited: nothing is staged, the caller deposits first.
    if (createCount > 0 && this.deps.depositor) return { records: [], needsNew: createCount };

    const keyChanges: KeyChange[] = [];
    const handed: KeyRecord[] = [...heldRecords];
    const give = (
      before: KeyRecord | undefined,
      base: KeyRecord,
      event: 'allocated' | 'reclaimed',
    ) => {
      const after: KeyRecord = {
        ...base,
        state: 'allocated',
        pod,
        since: now,
        history: withEvent(base.history, { at: now, event, pod }),
      };
      keyChanges.push(before ? { before, after } : { after });
      handed.push(after);
    };
    for (const r of reclaimed) give(r, r, 'reclaimed');
    for (const r of pooled) give(r, r, 'allocated');
    const created = await newKeyRecords(tx, this.deps, createCount, 'allocated', now);
    for (const base of created.records) give(undefined, base, 'allocated');

    const podChanges = await previousHolderChanges(tx, pooled, now);
    const takenBack = new Set(reclaimed.map((r) => r.pubkey));
    podChanges.push({
      name: pod,
      ...(podBefore ? { before: podBefore } : {}),
      after: {
        keys: handed.map((r) => r.pubkey),
        cooling: ownCooling.filter((pk) => !takenBack.has(pk)),
        since: now,
      },
    });
    // The indexes used are recorded in the same batch as their keys: never derived twice.
    const { nextKeyIndex } = created;
    tx.stage({
      keys: keyChanges,
      pods: podChanges,
      ...(nextKeyIndex === undefined ? {} : { nextKeyIndex }),
      events: allocationEvents(pod, now, handed.slice(held.length), pooled),
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

  /** Up to `n` keys other pods may have: free keys and keys whose reuse delay has passed. */
  private async poolEntries(
    tx: Transaction,
    n: number,
    now: number,
    exclude: ReadonlySet<string>,
  ): Promise<string[]> {
    if (n <= 0) return [];
    // Over-read by the excluded count: this pod's own cooling keys sit in the same index.
    const [cooled, free] = await Promise.all([
      tx.oldest('cooling', n + exclude.size, now - this.deps.config.reuseDelayMs),
      tx.oldest('unallocated', n),
    ]);
    const eligible = cooled.filter((e) => !exclude.has(e.pubkey));
    return pickOldest(eligible, free, n).map((e) => e.pubkey);
  }

  private async checkCanCreate(tx: Transaction, n: number, now: number): Promise<void> {
    const max = this.deps.config.maxTotalKeys;
    if (n <= 0 || max === undefined) return;
    const c = tx.counts();
    const total = totalKeys(c);
    if (total + n <= max) return;
    const [oldest] = await tx.oldest('cooling', 1);
    const waitMs = oldest ? oldest.since + this.deps.config.reuseDelayMs - now : undefined;
    throw new PkmError(
      'POOL_EXHAUSTED',
      `no free keys and --max-total-keys ${max} reached (${total} keys exist, ${n} more needed)`,
      waitMs === undefined ? {} : { retryAfter: Math.max(1, Math.ceil(waitMs / 1000)) },
    );
  }

  private async releaseIn(tx: Transaction, pod: string, opts: ReleaseOptions): Promise<string[]> {
    const before = await tx.getPod(pod);
    if (!before || before.keys.length === 0) return [];
    // A review of an older incarnation of a recreated pod must not release the new one's keys.
    if (opts.uid !== undefined && before.uid !== undefined && before.uid !== opts.uid) return [];
    const now = this.deps.clock();
    const records = await tx.getKeys(before.keys);
    const keyChanges: KeyChange[] = records.map((r) => ({
      before: r,
      after: {
        ...r,
        state: 'cooling',
        pod,
        since: now,
        history: withEvent(r.history, { at: now, event: 'released', pod }),
      },
    }));
    const after: PodRecord = { keys: [], cooling: [...before.cooling, ...before.keys], since: now };
    tx.stage({
      keys: keyChanges,
      pods: [{ name: pod, before, after }],
      events: [{ at: now, type: 'release', pod, pubkeys: before.keys }],
    });
    return before.keys;
  }

  /** Stores an EIP-3076 interchange for a pod's keys (see protection.ts). */
  async uploadProtection(pod: string, json: unknown): Promise<string[]> {
    const interchange = parseInterchange(json);
    const pubkeys = await this.group.run((tx) =>
      uploadProtectionIn(tx, this.deps, pod, interchange),
    );
    this.storedRoot = undefined; // the first upload may just have set it
    return pubkeys;
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

  private handOut(
    pod: string,
    records: readonly KeyRecord[],
    genesisValidatorsRoot: string | undefined,
  ): Allocation {
    return handOut(this.deps, pod, records, genesisValidatorsRoot);
  }
}
