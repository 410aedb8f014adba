// Live key moves (issue 16): what a running pod is to hold changes, and its agent makes its
// validator client follow through the Keymanager API.
//
// The protocol, and why a key is never in two VCs (DESIGN.md "Safety rules"):
//   1. An operator changes what pods hold: a count (PUT …/keys), a move, a rebalance. Keys to
//      take back are only marked leaving (leaving.ts); their pod still holds them.
//   2. Each pod's agent asks for its assignment (assignment()): the keys it is to run, with the
//      secrets of those its VC lacks, and the keys that are leaving. It imports the first
//      (POST /eth/v1/keystores), deletes the second (DELETE /eth/v1/keystores), and reports the
//      deletes with the VC's answer (recordRemovals()).
//   3. Only that report lets a key leave its pod: at once, to the move's destination or the pool,
//      when the VC's answer proves it stopped (removal-proof.ts); else it cools like a released
//      key. Until then the key is its pod's, and the server hands its secret to no other pod.
// Every step is one atomic commit, and the agent's steps are each safe to repeat: a crash of
// the server or the agent anywhere leaves each key held by one pod, whose VC has it or not.
import { type Interchange, parseInterchange } from '../api/interchange.js';
import type { KeySettings } from '../api/key-settings.js';
import type { BeaconGate } from '../beacon/liveness.js';
import type { Clock } from '../clock.js';
import { PkmError } from '../errors.js';
import { MetaKey } from '../store/buckets.js';
import type { StoreContract } from '../store/contract.js';
import type { PodRecord } from '../store/records.js';
import type { Allocator } from './allocator.js';
import type { GroupCommitter } from './group-commit.js';
import { podHolds } from './heartbeat.js';
import { summarise } from './interchange.js';
import { keepIn, podKeysIn, podKeysNow, takeBackIn } from './leaving.js';
import { type BeaconChain, type HandedKey, handOut } from './protection.js';
import { type PlannedMove, planRebalance, type Selector, selects } from './rebalance-plan.js';
import { type RemovalReport, type RemovalResult, recordRemovalsIn } from './removal.js';

export interface KeyMovesDeps {
  readonly store: StoreContract;
  readonly group: GroupCommitter;
  readonly clock: Clock;
  /** Grows pods (allocate), and keeps the cooling clocks and the resync window. */
  readonly allocator: Allocator;
  readonly beacon?: BeaconChain;
  /** --beacon-url: tells whether a key with no returned history was ever active. */
  readonly liveness?: BeaconGate;
}

/** A pod's keys as PUT …/keys leaves them. */
export interface PodCount {
  readonly pod: string;
  /** The keys its VC is to run. */
  readonly keys: string[];
  /** The keys its VC is to drop. */
  readonly leaving: string[];
}

export interface MoveResult {
  readonly from: string;
  readonly to: string;
  readonly keys: string[];
}

/** A key of a pod's assignment; `key` only for one to import (its secret and protection). */
export interface AssignedKey {
  readonly pubkey: string;
  readonly leaving?: { readonly to?: string };
  readonly settings?: KeySettings;
  readonly key?: HandedKey;
}

export interface Assignment {
  readonly pod: string;
  readonly keys: AssignedKey[];
  readonly genesisValidatorsRoot?: string;
}

export class KeyMoves {
  constructor(private readonly deps: KeyMovesDeps) {}

  private get max(): number {
    return this.deps.allocator.maxKeysPerPod;
  }

  /**
   * PUT …/keys: the pod is to run `count` keys. Fewer: the last ones handed out are marked
   * leaving. More: keys it is giving back to the pool stay instead, then the allocator tops it
   * up (free keys, then new ones; all or nothing, as POST). Refused with nothing changed when
   * the count is out of range, or when the keys still leaving leave no room.
   */
  async setCount(pod: string, count: number): Promise<PodCount> {
    if (!Number.isSafeInteger(count) || count < 0 || count > this.max)
      throw new PkmError(
        'COUNT_OUT_OF_RANGE',
        `count must be an integer from 0 to ${this.max} (--max-keys-per-pod)`,
      );
    const grow = await this.deps.group.run(async (tx) => {
      const now = this.deps.clock();
      const { record, assigned, leaving } = await podKeysIn(tx, pod);
      if (count <= assigned.length) {
        await takeBackIn(tx, now, pod, assigned.length - count, undefined);
        return 0;
      }
      const back = leaving.filter((r) => r.leaving?.to === undefined).length;
      const need = count - assigned.length - Math.min(back, count - assigned.length);
      const total = (record?.keys.length ?? 0) + need;
      if (total + (record?.reported?.length ?? 0) > this.max)
        throw new PkmError(
          'COUNT_OUT_OF_RANGE',
          `pod ${pod} still holds ${leaving.length} keys on their way out (and ${record?.reported?.length ?? 0} reported): a count of ${count} beside them would pass --max-keys-per-pod (${this.max}); ask again once they left (nothing was changed)`,
        );
      await keepIn(tx, now, pod, count - assigned.length);
      return need > 0 ? total : 0;
    });
    // The keys reach the pod's VC through its agent's assignment (step 2 above), not from here:
    // their secrets are not opened.
    if (grow > 0) await this.deps.allocator.allocateKeys(pod, grow);
    const { assigned, leaving } = await podKeysNow(this.deps.store, pod);
    return { pod, keys: assigned.map((r) => r.pubkey), leaving: leaving.map((r) => r.pubkey) };
  }

  /** pkm move: marks `count` of `from`'s keys as leaving for `to`. */
  async move(from: string, to: string, count: number): Promise<MoveResult> {
    if (from === to) throw new PkmError('INVALID_BODY', 'from and to name the same pod');
    if (!Number.isSafeInteger(count) || count < 1 || count > this.max)
      throw new PkmError(
        'COUNT_OUT_OF_RANGE',
        `count must be an integer from 1 to ${this.max} (--max-keys-per-pod)`,
      );
    const keys = await this.deps.group.run(async (tx) => {
      this.checkRoom(to, podHolds(await tx.getPod(to)), count);
      return takeBackIn(tx, this.deps.clock(), from, count, to);
    });
    return { from, to, keys };
  }

  /**
   * pkm rebalance: evens the keys out over the selected pods (rebalance-plan.ts), counting the
   * moves already under way between them as done. All the moves are marked in one commit.
   */
  async rebalance(selector: Selector): Promise<{ moves: MoveResult[] }> {
    const known: string[] = [];
    for await (const [name, record] of this.deps.store.pods())
      if (record.keys.length > 0 && selects(selector, name)) known.push(name);
    const chosen = [...new Set([...known, ...selector.names])].sort();
    if (chosen.length === 0)
      throw new PkmError(
        'NO_PODS_SELECTED',
        'the selector matches no pod that holds keys (a plain name selects a pod even without keys)',
      );
    const moves = await this.deps.group.run(async (tx) => {
      const counts = new Map<string, number>(chosen.map((p) => [p, 0]));
      for (const pod of chosen) {
        const { assigned, leaving } = await podKeysIn(tx, pod);
        counts.set(pod, (counts.get(pod) ?? 0) + assigned.length);
        for (const r of leaving) {
          const to = r.leaving?.to;
          if (to !== undefined && counts.has(to)) counts.set(to, (counts.get(to) ?? 0) + 1);
        }
      }
      const plan: PlannedMove[] = planRebalance(counts);
      const now = this.deps.clock();
      const done: MoveResult[] = [];
      for (const m of plan)
        done.push({
          from: m.from,
          to: m.to,
          keys: await takeBackIn(tx, now, m.from, m.count, m.to),
        });
      return done;
    });
    return { moves };
  }

  /**
   * The agent's view of its pod: every key it holds, leaving or not, with the settings each
   * carries, and the secret (and slashing protection) of each key it is to run that its VC
   * does not `have`. A key's secret goes only to the pod that holds it, and never once it is
   * leaving. No lock is taken: the answer is this instant's, and only the pod's own removal
   * report lets a key go.
   */
  async assignment(
    pod: string,
    have: ReadonlySet<string>,
    uid?: string | undefined,
  ): Promise<Assignment> {
    // The root first: the records' secrets open as soon as they are read (protection.ts handOut).
    const root = await this.genesisValidatorsRoot();
    const { assigned, leaving, handed } = await this.viewWithSecrets(pod, have, uid, root);
    const secrets = new Map(handed.keys.map((k) => [k.pubkey, k]));
    const keys: AssignedKey[] = [...assigned, ...leaving].map((r) => {
      const key = secrets.get(r.pubkey);
      return {
        pubkey: r.pubkey,
        ...(r.leaving === undefined
          ? {}
          : { leaving: r.leaving.to === undefined ? {} : { to: r.leaving.to } }),
        ...(r.settings === undefined ? {} : { settings: r.settings }),
        ...(key === undefined ? {} : { key }),
      };
    });
    return { pod, keys, ...(root === undefined ? {} : { genesisValidatorsRoot: root }) };
  }

  /**
   * holderView, with the secrets of the keys the VC does not `have`. The records are read
   * outside any group: a KEK rotation may end between their read and their opening, the data
   * key they were sealed with retired (kek-rotation.ts). A record that does not open is read
   * once more; one that does not open then is damaged (STORE_CORRUPT).
   */
  private async viewWithSecrets(
    pod: string,
    have: ReadonlySet<string>,
    uid: string | undefined,
    root: string | undefined,
  ) {
    const once = async () => {
      const view = await this.holderView(pod, uid);
      const missing = view.assigned.filter((r) => !have.has(r.pubkey));
      return { ...view, handed: await handOut(this.deps, pod, missing, () => root) };
    };
    try {
      return await once();
    } catch (err) {
      if (!(err instanceof PkmError && err.code === 'STORE_CORRUPT')) throw err;
      return once();
    }
  }

  /**
   * The pod's keys, as the incarnation `uid` (its token's) may see them. A pod of another UID
   * than the recorded holder's is a new incarnation whose predecessor went without a deletion
   * the server saw, and may still run on a node cut off from the API server: its keys are
   * fenced first (Allocator.recordUid, as allocateIn does), never handed to the newcomer. A
   * holder with no UID on record gets this one. Should another incarnation take the name over
   * between that commit and the read, nothing is handed out (OTHER_INCARNATION).
   */
  private async holderView(pod: string, uid: string | undefined) {
    const view = await podKeysNow(this.deps.store, pod);
    if (uid === undefined || !otherIncarnation(view.record, uid)) return view;
    await this.deps.allocator.recordUid(pod, uid);
    const again = await podKeysNow(this.deps.store, pod);
    if (otherIncarnation(again.record, uid))
      throw new PkmError(
        'OTHER_INCARNATION',
        `pod ${pod}'s keys are held by another incarnation of it (UID ${again.record?.uid ?? 'unknown'}), not this one (${uid}): nothing is handed out`,
      );
    return again;
  }

  /**
   * The agent deleted keys from its VC (removal.ts): one commit stores the returned protection
   * and settings and lets each key with proof go. An interchange of another chain is refused
   * (INTERCHANGE_MISMATCH) and changes nothing.
   */
  async recordRemovals(
    pod: string,
    reports: readonly RemovalReport[],
    slashingProtection: unknown,
    uid?: string | undefined,
  ): Promise<RemovalResult[]> {
    const interchange = parseInterchange(slashingProtection);
    const root = await this.genesisValidatorsRoot();
    const entries = root === undefined ? undefined : this.entriesOf(interchange, root);
    const active = await this.activeOnChain(pod, reports, entries);
    const cooling = this.deps.allocator.cooling;
    const results = await this.deps.group.run((tx) =>
      recordRemovalsIn(tx, pod, reports, {
        now: this.deps.clock(),
        maxKeysPerPod: this.max,
        entries,
        activeOnChain: (pk) => active?.get(pk),
        fenceable: this.deps.beacon?.genesisTime !== undefined,
        resyncing: cooling.resyncing(),
        uid,
      }),
    );
    // Keys that now cool count their reuse delay on this run's monotonic clock too.
    cooling.released(results.filter((r) => r.outcome === 'cooling').map((r) => r.pubkey));
    return results;
  }

  private entriesOf(interchange: Interchange, root: string) {
    const gvr = interchange.metadata.genesis_validators_root.toLowerCase();
    if (gvr !== root.toLowerCase())
      throw new PkmError(
        'INTERCHANGE_MISMATCH',
        `the interchange's genesis_validators_root ${gvr} is not this server's ${root}: it is another chain's history (nothing was changed)`,
      );
    return summarise(interchange);
  }

  /**
   * With --beacon-url: whether each key that came back without history was ever active on
   * chain (a validator active, exiting or live). Asked outside the lock; if the gate cannot
   * answer, every such key counts as active (it fails closed: no proof).
   */
  private async activeOnChain(
    pod: string,
    reports: readonly RemovalReport[],
    entries: ReadonlyMap<string, unknown> | undefined,
  ): Promise<Map<string, boolean> | undefined> {
    const gate = this.deps.liveness;
    if (!gate || entries === undefined) return undefined;
    const records = await this.deps.store.getKeys(
      reports.map((r) => r.pubkey).filter((pk) => !entriesHaveHistory(entries, pk)),
    );
    const asked = records
      .filter((r) => r.state === 'allocated' && r.pod === pod && r.leaving !== undefined)
      .map((r) => r.pubkey);
    const out = new Map<string, boolean>();
    if (asked.length === 0) return out;
    try {
      const views = await gate.statuses(asked, this.deps.clock());
      for (const pk of asked) {
        const v = views.get(pk);
        out.set(
          pk,
          v === undefined || (v.kind !== 'absent' && (v.live || !v.status.startsWith('pending'))),
        );
      }
    } catch {
      for (const pk of asked) out.set(pk, true);
    }
    return out;
  }

  private checkRoom(to: string, holds: number, count: number): void {
    if (holds + count > this.max)
      throw new PkmError(
        'COUNT_OUT_OF_RANGE',
        `pod ${to} holds ${holds} keys: ${count} more would pass --max-keys-per-pod (${this.max})`,
      );
  }

  private async genesisValidatorsRoot(): Promise<string | undefined> {
    return (
      this.deps.beacon?.genesisValidatorsRoot ??
      (await this.deps.store.getMeta(MetaKey.genesisValidatorsRoot))
    );
  }
}

/** Whether an entry with some signing history came back for the key. */
function entriesHaveHistory(entries: ReadonlyMap<string, unknown>, pubkey: string): boolean {
  const e = entries.get(pubkey);
  return typeof e === 'object' && e !== null && Object.keys(e).length > 0;
}

/** The pod holds keys, and its record names no UID or another one than `uid`. */
function otherIncarnation(record: PodRecord | undefined, uid: string): boolean {
  return record !== undefined && record.keys.length > 0 && record.uid !== uid;
}
