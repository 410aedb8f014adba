// Allocate(pod, n) and UnallocateAllKeys(pod): the domain rules, over the store, with no HTTP.
// Every state change runs through the group committer (group-commit.ts): one at a time, and
// nothing else writes between reading the state and committing its batch.

import type { DepositRecord } from '../deposit/deposit-data.js';
import { PkmError } from '../errors.js';
import type { KeySource, NewKey } from '../keys/source.js';
import type { NewAuditEvent } from '../store/audit.js';
import { MetaKey } from '../store/buckets.js';
import type { KeyRecord, PodRecord, Protection } from '../store/records.js';
import { withEvent } from '../store/records.js';
import type { KeyChange, PodChange, Store } from '../store/store.js';
import type { Clock } from './clock.js';
import { totalKeys } from './counts.js';
import { GroupCommitter } from './group-commit.js';
import { parseInterchange } from './interchange.js';
import { newKeyRecords } from './new-keys.js';
import { pickOldest } from './pick.js';
import { handOut, uploadProtectionIn } from './protection.js';
import { retireIn } from './retire.js';
import type { Transaction } from './transaction.js';

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
  /** Deposit data for each new key, kept in the batch that records the key. */
  readonly makeDeposit?: (key: NewKey) => DepositRecord;
  readonly onAllocated?: (outcome: AllocationOutcome) => void;
  readonly onReleased?: (pod: string, released: number) => void;
}

export class Allocator {
  private readonly group: GroupCommitter;

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
    for (let attempt = 0; attempt < 4; attempt++) {
      const { records, outcome, needsNew } = await this.group.run((tx) =>
        this.allocateIn(tx, pod, count),
      );
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
  async release(pod: string): Promise<string[]> {
    const released = await this.group.run((tx) => this.releaseIn(tx, pod));
    if (released.length > 0) this.deps.onReleased?.(pod, released.length);
    return released;
  }

  /** Retires a key: it is never handed out again (see retire.ts). */
  retire(pubkey: string, reason: string): Promise<KeyRecord> {
    return this.group.run((tx) => retireIn(tx, this.deps.clock(), pubkey, reason));
  }

  async podKeys(pod: string): Promise<string[]> {
    return (await this.deps.store.getPod(pod))?.keys ?? [];
  }

  private async allocateIn(
    tx: Transaction,
    pod: string,
    count: number,
  ): Promise<{ records: KeyRecord[]; outcome?: AllocationOutcome; needsNew?: number }> {
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
    const fromPool = await this.poolEntries(tx, need - reclaim.length, now, new Set(ownCooling));
    // One read for every record involved.
    const records = await tx.getKeys([...held, ...reclaim, ...fromPool]);
    const heldRecords = records.slice(0, held.length);
    if (need === 0) return { records: heldRecords };
    const reclaimed = records.slice(held.length, held.length + reclaim.length);
    const pooled = records.slice(held.length + reclaim.length);
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

    const podChanges = await this.previousHolderChanges(tx, pooled, now);
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

  /** Reused cooling keys leave their previous holder's cooling list, in the same batch. */
  private async previousHolderChanges(
    tx: Transaction,
    pooled: readonly KeyRecord[],
    now: number,
  ): Promise<PodChange[]> {
    const byPod = new Map<string, Set<string>>();
    for (const r of pooled) {
      if (r.state !== 'cooling' || r.pod === undefined) continue;
      const set = byPod.get(r.pod) ?? new Set<string>();
      set.add(r.pubkey);
      byPod.set(r.pod, set);
    }
    const changes: PodChange[] = [];
    for (const [name, gone] of byPod) {
      const before = await tx.getPod(name);
      if (!before)
        throw new PkmError('STORE_CORRUPT', `cooling keys name pod ${name}, which has no record`);
      const after: PodRecord = {
        ...before,
        cooling: before.cooling.filter((pk) => !gone.has(pk)),
        since: now,
      };
      const empty = after.keys.length === 0 && after.cooling.length === 0;
      changes.push(empty ? { name, before } : { name, before, after });
    }
    return changes;
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

  private async releaseIn(tx: Transaction, pod: string): Promise<string[]> {
    const before = await tx.getPod(pod);
    if (!before || before.keys.length === 0) return [];
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
  uploadProtection(pod: string, json: unknown): Promise<string[]> {
    const interchange = parseInterchange(json);
    return this.group.run((tx) => uploadProtectionIn(tx, this.deps, pod, interchange));
  }

  private async genesisValidatorsRoot(): Promise<string | undefined> {
    return (
      this.deps.beacon?.genesisValidatorsRoot ??
      (await this.deps.store.getMeta(MetaKey.genesisValidatorsRoot))
    );
  }

  private handOut(
    pod: string,
    records: readonly KeyRecord[],
    genesisValidatorsRoot: string | undefined,
  ): Allocation {
    return handOut(this.deps, pod, records, genesisValidatorsRoot);
  }
}

/** What an allocation did: the keys it handed out, and each cooled key that moved pods. */
function allocationEvents(
  pod: string,
  at: number,
  given: readonly KeyRecord[],
  pooled: readonly KeyRecord[],
): NewAuditEvent[] {
  const events: NewAuditEvent[] = [
    { at, type: 'allocate', pod, pubkeys: given.map((r) => r.pubkey) },
  ];
  for (const r of pooled) {
    if (r.state === 'cooling' && r.pod !== undefined) {
      events.push({
        at,
        type: 'reuse',
        pod,
        pubkeys: [r.pubkey],
        detail: `from ${r.pod}, released at ${new Date(r.since).toISOString()}`,
      });
    }
  }
  return events;
}
