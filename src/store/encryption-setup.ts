// Opening a store's secrets: unwrap (or, for a store without one, make) the data key. During an
// unfinished KEK rotation (kek-rotation.ts) the new KEK opens both data keys; the old one alone
// cannot open the records already moved, so the store is refused until the rotation finishes.
import { z } from 'zod';
import { PkmError } from '../errors.js';
import { MetaKey } from './buckets.js';
import {
  KeyRing,
  kekId,
  lockedCodec,
  newDataKey,
  unwrapDataKey,
  type WrappedKey,
  wrapDataKey,
} from './encryption.js';
import type { SecretCodec } from './secret-codec.js';

export { lockedCodec };

/** The new data key, and the old one, both wrapped by the new KEK. */
export interface NextDataKey {
  readonly current: WrappedKey;
  readonly previous: WrappedKey;
}

export interface RotationState {
  /** The KEK id the stored data key is wrapped by. */
  readonly current: string;
  readonly target: string | undefined;
  readonly migrated: string | undefined;
  /** Set while a rotation is unfinished. */
  readonly next: NextDataKey | undefined;
}

const WrappedKeySchema = z.object({ kek: z.string(), data: z.string() });
const NextDataKeySchema = z.object({ current: WrappedKeySchema, previous: WrappedKeySchema });

/**
 * A meta value's codec: JSON of the schema's shape, both ways. A damaged stored value is
 * STORE_CORRUPT, never a cast.
 */
function jsonCodec<T>(what: string, schema: z.ZodType<T>) {
  return {
    encode: (value: T): string => JSON.stringify(schema.parse(value)),
    decode(text: string): T {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new PkmError('STORE_CORRUPT', `the stored ${what} is not JSON`);
      }
      const parsed = schema.safeParse(json);
      if (!parsed.success) throw new PkmError('STORE_CORRUPT', `the stored ${what} is malformed`);
      return parsed.data;
    },
  };
}

/** meta `data-key`: the data key, wrapped by the KEK it names. */
export const dataKeyCodec = jsonCodec('data key', WrappedKeySchema);
/** meta `next-data-key`: both data keys of an unfinished rotation, wrapped by the new KEK. */
export const nextDataKeyCodec = jsonCodec('next data key', NextDataKeySchema);

export async function readRotation(
  get: (key: string) => Promise<string | undefined>,
): Promise<RotationState | undefined> {
  const stored = await get(MetaKey.dataKey);
  if (stored === undefined) return undefined;
  const target = await get(MetaKey.targetKekId);
  const migrated = await get(MetaKey.migratedKekId);
  const next = await get(MetaKey.nextDataKey);
  return {
    current: dataKeyCodec.decode(stored).kek,
    target,
    migrated,
    next: next === undefined ? undefined : nextDataKeyCodec.decode(next),
  };
}

/**
 * The meta values opening the secrets reads and writes, on any backend (LevelDB, PostgreSQL):
 * both open their data key through openSecrets, so the rules below are kept once.
 */
export interface SecretsMeta {
  get(key: string): Promise<string | undefined>;
  /**
   * Writes `value` durably unless the key holds one already; resolves to the value stored
   * afterwards (another server sharing the database may have made its data key first).
   */
  putIfAbsent(key: string, value: string): Promise<string>;
}

/**
 * The store's key ring. `loadKek` gives the KEK (told whether the store has a data key yet);
 * `extraKeks` are more KEKs that may be tried (the new one, when resuming a rotation).
 */
export async function openSecrets(
  meta: SecretsMeta,
  loadKek: (hasDataKey: boolean) => Promise<Buffer>,
  extraKeks: readonly Buffer[] = [],
): Promise<KeyRing> {
  const stored = await meta.get(MetaKey.dataKey);
  const kek = await loadKek(stored !== undefined);
  if (stored === undefined) {
    const dek = newDataKey();
    // Durable: records sealed with this data key are durable only if the key itself is.
    const value = dataKeyCodec.encode(wrapDataKey(dek, kek));
    const kept = await meta.putIfAbsent(MetaKey.dataKey, value);
    if (kept === value) return new KeyRing(kekId(kek), dek);
    // Another server made the data key first: open that one, as any stored key.
    return openStored(meta, kept, kek, extraKeks);
  }
  return openStored(meta, stored, kek, extraKeks);
}

async function openStored(
  meta: SecretsMeta,
  stored: string,
  kek: Buffer,
  extraKeks: readonly Buffer[],
): Promise<KeyRing> {
  const wrapped = dataKeyCodec.decode(stored);
  const given = [kek, ...extraKeks];
  const byId = (id: string | undefined) => given.find((k) => kekId(k) === id);
  const state = await readRotation((key) => meta.get(key));
  if (state?.next === undefined || state.target === undefined) {
    return new KeyRing(wrapped.kek, unwrapDataKey(wrapped, byId(wrapped.kek) ?? kek));
  }
  const target = byId(state.target);
  if (target === undefined) {
    if (byId(wrapped.kek) === undefined) unwrapDataKey(wrapped, kek); // throws WRONG_KEK
    throw new PkmError(
      'ROTATION_UNFINISHED',
      `a KEK rotation to KEK ${state.target} is unfinished: start with that KEK (--kek-file) to finish it, or run pkm db rotate-kek --new-kek-file <its file>`,
    );
  }
  const ring = new KeyRing(wrapped.kek, unwrapDataKey(state.next.previous, target));
  ring.add(state.target, unwrapDataKey(state.next.current, target), true);
  return ring;
}

/** The ring of data keys; only a store opened with its KEK has one (every backend). */
export function requireKeyRing(secrets: SecretCodec): KeyRing {
  if (!(secrets instanceof KeyRing))
    throw new PkmError(
      'INVALID_CONFIG',
      'this store is encrypted: open it with its KEK (--kek-file)',
    );
  return secrets;
}
