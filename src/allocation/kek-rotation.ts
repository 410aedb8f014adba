// KEK rotation: every secret moves to a new data key, wrapped by the new KEK. A fresh data key
// (not just a re-wrap) means a leaked old KEK and a copy of the store open nothing new.
//
// Steps, each one atomic batch, so a crash at any point resumes from the last one written:
//   1. begin:   target-kek-id, and next-data-key (the new data key and the old one, both
//               wrapped by the new KEK). From here the new KEK alone opens every record.
//   2. migrate: records re-sealed in batches; each names its KEK, so progress is the records.
//   3. finish:  the data key becomes the new one; migrated-kek-id = target; next-data-key goes.
// Runs through the group committer, so it never races a state change of a live server.
import { PkmError } from '../errors.js';
import { MetaKey } from '../store/buckets.js';
import type { KeyChange, StoreContract } from '../store/contract.js';
import { kekId, newDataKey, wrapDataKey } from '../store/encryption.js';
import {
  dataKeyCodec,
  type NextDataKey,
  nextDataKeyCodec,
  readRotation,
} from '../store/encryption-setup.js';
import type { KeyRecord } from '../store/records.js';
import type { GroupCommitter } from './group-commit.js';

/** What the rotation needs of the group committer: its changes run with nothing else writing. */
type Committer = Pick<GroupCommitter, 'run'>;

export interface RotationResult {
  readonly from: string;
  readonly target: string;
  /** Records re-sealed by this call (a resumed rotation counts only the rest). */
  readonly migrated: number;
}

export interface RotationOptions {
  /** Records per batch. */
  readonly batch?: number;
  readonly onProgress?: (migrated: number, total: number) => void;
  /** Once the rotation has begun (or is resumed), before the first record moves. */
  readonly onBegin?: (from: string, target: string) => void;
  /** The wall clock the audit events are stamped with (the server's injected one). */
  readonly clock?: () => number;
}

const now = (opts: RotationOptions) => (opts.clock ?? Date.now)();

/** True while a rotation has begun and not finished. */
export async function rotationUnfinished(store: StoreContract): Promise<boolean> {
  const state = await readRotation((key) => store.getMeta(key));
  return state?.next !== undefined;
}

/** Begins (or resumes, for the same KEK) a rotation to `newKek`, and finishes it. */
export async function rotateKek(
  store: StoreContract,
  group: Committer,
  newKek: Buffer,
  opts: RotationOptions = {},
): Promise<RotationResult> {
  const ring = store.keyRing();
  const target = kekId(newKek);
  const from = await group
    .run(async (tx) => {
      const state = await readRotation((key) => tx.getMeta(key));
      if (state?.next !== undefined) {
        if (state.target !== target)
          throw new PkmError(
            'ROTATION_IN_PROGRESS',
            `a rotation to KEK ${state.target} is unfinished: finish it first (with that KEK)`,
          );
        return state.current;
      }
      const current = ring.sealingKek;
      if (current === target) return current; // done already: nothing to begin
      const old = ring.dataKey(current);
      if (!old) throw new PkmError('INTERNAL', 'the key ring lacks its own data key');
      const dek = newDataKey();
      const next: NextDataKey = {
        current: wrapDataKey(dek, newKek),
        previous: wrapDataKey(old, newKek),
      };
      tx.stage({
        keys: [],
        pods: [],
        meta: [
          [MetaKey.targetKekId, target],
          [MetaKey.nextDataKey, nextDataKeyCodec.encode(next)],
        ],
        events: [{ at: now(opts), type: 'kek-rotation', pubkeys: [], detail: `begin ${target}` }],
        // Another server would keep sealing with the old data key: on a shared store, only
        // while this one is alone on it (each step checks, under the commit's lock).
        alone: true,
      });
      // Sealing moves to the new key only once the batch is written (the group resolves after).
      return { begun: current, dek };
    })
    .then((r) => {
      if (typeof r === 'string') return r;
      ring.add(target, r.dek, true);
      return r.begun;
    });
  if (!(await rotationUnfinished(store))) return { from, target, migrated: 0 };
  opts.onBegin?.(from, target);
  const migrated = await migrate(store, group, target, opts);
  return { from, target, migrated };
}

/** Finishes an unfinished rotation (the store was opened with the new KEK). */
export async function finishRotation(
  store: StoreContract,
  group: Committer,
  opts: RotationOptions = {},
): Promise<RotationResult | undefined> {
  const state = await readRotation((key) => store.getMeta(key));
  if (state?.next === undefined || state.target === undefined) return undefined;
  const migrated = await migrate(store, group, state.target, opts);
  return { from: state.current, target: state.target, migrated };
}

/** A record whose secret is not sealed under the target KEK (a pubkey-only record has none). */
function stale(record: KeyRecord, target: string): boolean {
  const { secret } = record;
  return secret !== undefined && (secret.alg !== 'aes-256-gcm' || secret.kek !== target);
}

async function stalePubkeys(store: StoreContract, target: string): Promise<string[]> {
  const found: string[] = [];
  for await (const r of store.keyRecords()) if (stale(r, target)) found.push(r.pubkey);
  return found;
}

function reseal(store: StoreContract, records: readonly KeyRecord[], target: string): KeyChange[] {
  const ring = store.keyRing();
  return records.flatMap((r) =>
    r.secret !== undefined && stale(r, target)
      ? [{ before: r, after: { ...r, secret: ring.seal(ring.open(r.secret, r.pubkey), r.pubkey) } }]
      : [],
  );
}

async function migrate(
  store: StoreContract,
  group: Committer,
  target: string,
  opts: RotationOptions,
): Promise<number> {
  const ring = store.keyRing();
  if (ring.sealingKek !== target) throw new PkmError('INTERNAL', 'not sealing with the target');
  const size = opts.batch ?? 500;
  const todo = await stalePubkeys(store, target);
  let done = 0;
  for (let i = 0; i < todo.length; i += size) {
    done += await group.run(async (tx) => {
      const changes = reseal(store, await tx.getKeys(todo.slice(i, i + size)), target);
      tx.stage({ keys: changes, pods: [], alone: true });
      return changes.length;
    });
    opts.onProgress?.(done, todo.length);
  }
  // The last step re-checks with nothing else writing: a key sealed under the old data key
  // just before sealing moved over is caught here, in the same batch that ends the rotation.
  done += await group.run(async (tx) => {
    const state = await readRotation((key) => tx.getMeta(key));
    if (state?.next === undefined) return 0;
    const changes = reseal(store, await tx.getKeys(await stalePubkeys(store, target)), target);
    tx.stage({
      keys: changes,
      pods: [],
      meta: [
        [MetaKey.dataKey, dataKeyCodec.encode(state.next.current)],
        [MetaKey.migratedKekId, target],
        [MetaKey.nextDataKey, undefined],
      ],
      events: [{ at: now(opts), type: 'kek-rotation', pubkeys: [], detail: `done ${target}` }],
      alone: true,
    });
    return changes.length;
  });
  ring.retireOthers();
  await store.compact();
  return done;
}
