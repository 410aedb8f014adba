// Slashing protection with the keys (EIP-3076): uploads merged into each key, and what a pod
// gets with its keys, with a fence for keys that were held before.

import type { IgnoredKey, IgnoredReason, Interchange, Protection } from '../api/interchange.js';
import type { Clock } from '../clock.js';
import { NETWORKS } from '../deposit/networks.js';
import { PkmError } from '../errors.js';
import { MetaKey } from '../store/buckets.js';
import type { StoreContract } from '../store/contract.js';
import type { Draft, KeyRecord } from '../store/records.js';
import { fenceAt, merge, summarise } from './interchange.js';
import type { Transaction } from './transaction.js';
import { withProtection } from './transitions.js';

/** A key as a pod gets it: its secret, and the protection to import first. */
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

export interface ProtectionDeps {
  readonly store: StoreContract;
  readonly clock: Clock;
  readonly beacon?: BeaconChain;
}

/**
 * Who may fix the store's genesis_validators_root while none is known (DESIGN.md "Safety
 * rules": a pod's upload never fixes it; it comes from --network or an admin):
 *   - admin: an admin token. Fixes it even with nothing stored: the operator's way to set it.
 *   - open: no authentication at all (loopback, or --insecure). Anyone could be any pod or the
 *     operator, so the first upload that stores a key's history fixes it, as it always did.
 *   - pod: a pod's own token. Never fixes it: the upload is refused until it is known.
 */
export type RootAuthority = 'admin' | 'open' | 'pod';

export interface UploadResult {
  /** Keys whose history was stored: the pod holds them, or released them and they still cool. */
  readonly stored: string[];
  /** Keys the interchange lists whose history was left out, and why. */
  readonly ignored: IgnoredKey[];
  /** Set when this upload fixed the store's genesis root. */
  readonly fixedRoot?: string;
}

const ROOT_HOWTO = `start the server with --network ${Object.keys(NETWORKS).join('|')}, or --genesis-validators-root 0x<64 hex> for another chain, or upload once with an admin token`;

/**
 * A configured root (--network, --genesis-validators-root) against the one a store's uploads
 * were checked against: the history in the store belongs to that chain, so another is refused.
 */
export function checkConfiguredRoot(
  configured: string | undefined,
  stored: string | undefined,
  flag: string,
): void {
  if (configured === undefined || stored === undefined) return;
  if (configured.toLowerCase() === stored.toLowerCase()) return;
  throw new PkmError(
    'INVALID_CONFIG',
    `${flag} has genesis_validators_root ${configured.toLowerCase()}, but the slashing protection in this store was uploaded for ${stored.toLowerCase()}: a wrong --network or --genesis-validators-root, or another chain's --data-dir`,
  );
}

/** Why a listed key is not the pod's to upload for; undefined when it is. */
function ignoredReason(record: KeyRecord | undefined, held: boolean): IgnoredReason | undefined {
  if (record === undefined) return 'unknown';
  if (record.state === 'conflict') return 'conflict';
  if (record.state === 'retired') return 'retired';
  return held ? undefined : 'not-held';
}

/**
 * Stores an interchange for a pod's keys, key by key, each merged with what the key carries.
 * The genesis_validators_root must be the configured one, else the stored one (409 naming
 * both); with neither, only `authority` may fix it (see RootAuthority). Then the history of
 * each key the pod holds (or released and is still cooling) is stored, and every other key is
 * reported back in `ignored`: a VC's export lists every key it ever ran, and one key that moved
 * on must not cost the others their history (EIP-3076 interchanges are per pubkey).
 */
export async function uploadProtectionIn(
  tx: Transaction,
  deps: ProtectionDeps,
  pod: string,
  interchange: Interchange,
  authority: RootAuthority,
): Promise<UploadResult> {
  const summary = summarise(interchange);
  const gvr = interchange.metadata.genesis_validators_root.toLowerCase();
  const configured = deps.beacon?.genesisValidatorsRoot?.toLowerCase();
  const stored = (await tx.getMeta(MetaKey.genesisValidatorsRoot))?.toLowerCase();
  const expected = configured ?? stored;
  if (expected !== undefined && expected !== gvr) {
    const source = configured === undefined ? 'the root of earlier uploads' : 'the configured root';
    throw new PkmError(
      'INTERCHANGE_MISMATCH',
      `the interchange's genesis_validators_root ${gvr} is not this server's ${expected} (${source}): it is another chain's history`,
    );
  }
  if (expected === undefined && authority === 'pod') {
    throw new PkmError(
      'GENESIS_ROOT_UNKNOWN',
      `this server does not know the chain's genesis_validators_root yet, and a pod's upload may not set it (this one says ${gvr}); nothing was stored: ${ROOT_HOWTO}`,
    );
  }

  const podRecord = await tx.getPod(pod);
  const held = new Set([...(podRecord?.keys ?? []), ...(podRecord?.cooling ?? [])]);
  const listed = [...summary.keys()];
  const records = await Promise.all(listed.map((pk) => tx.getKey(pk)));
  const own: KeyRecord[] = [];
  const ignored: IgnoredKey[] = [];
  listed.forEach((pubkey, i) => {
    const record = records[i];
    const reason = ignoredReason(record, held.has(pubkey));
    if (reason !== undefined) ignored.push({ pubkey, reason });
    else if (record !== undefined) own.push(record);
  });

  // The root is fixed with the first history stored under it, whichever source named it, so a
  // later start with another --network is refused (checkConfiguredRoot). An admin fixes it even
  // with nothing stored; an open server only once some history is (data: [] fixes nothing).
  const fixes = stored === undefined && (own.length > 0 || authority === 'admin');
  if (own.length === 0 && !fixes) return { stored: [], ignored };
  const now = deps.clock();
  const detail = [
    ...(fixes ? [`genesis_validators_root ${gvr}`] : []),
    ...(ignored.length > 0 ? [`${ignored.length} listed keys not the pod's were ignored`] : []),
  ];
  tx.stage({
    keys: own.map((before) => ({
      before,
      after: withProtection(
        before,
        merge(before.protection ?? {}, summary.get(before.pubkey) ?? {}),
      ),
    })),
    pods: [],
    events: [
      {
        at: now,
        type: 'protection',
        pod,
        pubkeys: own.map((r) => r.pubkey),
        ...(detail.length > 0 ? { detail: detail.join('; ') } : {}),
      },
    ],
    ...(fixes ? { meta: [[MetaKey.genesisValidatorsRoot, gvr] as const] } : {}),
  });
  return {
    stored: own.map((r) => r.pubkey),
    ignored,
    ...(fixes && configured === undefined ? { fixedRoot: gvr } : {}),
  };
}

/** History events after which some pod may have signed with the key: it gets a fence. */
const RECYCLED: ReadonlySet<string> = new Set(['released', 'fenced', 'moved', 'removed']);

/**
 * The keys as the pod gets them. A key that was held before (recycled) also carries a fence at
 * the current slot when the chain's genesis is known: whatever its old holder signed, the new
 * one cannot sign again. Uploaded protection and the fence merge to the stricter of both.
 *
 * The secrets open at once, before the root is asked for: the records were read (or committed)
 * just now, and a KEK rotation's next commit may retire the data key they are sealed with
 * (kek-rotation.ts). If anything fails after, the plaintexts are zeroed: nobody gets them.
 */
export async function handOut(
  deps: ProtectionDeps,
  pod: string,
  records: readonly KeyRecord[],
  /** Asked once the secrets are open (a read that fails then is awaited, and heard). */
  genesisValidatorsRoot: () => string | undefined | Promise<string | undefined>,
): Promise<Allocation> {
  const sealed = records.map((r) => {
    if (r.secret === undefined)
      throw new PkmError('STORE_CORRUPT', `key ${r.pubkey} has no secret to hand out`);
    return { sealed: r.secret, pubkey: r.pubkey };
  });
  const secrets = deps.store.secrets.openMany(sealed);
  try {
    return allocationOf(deps, pod, records, await genesisValidatorsRoot(), secrets);
  } catch (err) {
    for (const secret of secrets) secret.fill(0);
    throw err;
  }
}

function allocationOf(
  deps: ProtectionDeps,
  pod: string,
  records: readonly KeyRecord[],
  genesisValidatorsRoot: string | undefined,
  secrets: readonly Uint8Array[],
): Allocation {
  const genesis = deps.beacon?.genesisTime;
  const now = deps.clock();
  // Pushed onto a literal: see Store.getKeys.
  const keys: HandedKey[] = [];
  records.forEach((r, i) => {
    // Released, fenced (a forced release, a restore) or deleted from a VC (a live move):
    // some pod may have signed with it.
    const recycled = r.history.some((e) => RECYCLED.has(e.event));
    const fence = recycled && genesis !== undefined ? fenceAt(now, genesis) : undefined;
    const protection = r.protection || fence ? merge(r.protection ?? {}, fence ?? {}) : undefined;
    const secretKey = secrets[i];
    if (secretKey === undefined) throw new Error(`the opened secrets miss ${r.pubkey}'s`);
    // Field by field rather than by spreads: see transitions.ts inState.
    const key: Draft<HandedKey> = { pubkey: r.pubkey, secretKey };
    if (r.path !== undefined) key.path = r.path;
    if (protection) key.protection = protection;
    keys.push(key);
  });
  return {
    pod,
    ...(genesisValidatorsRoot === undefined ? {} : { genesisValidatorsRoot }),
    keys,
  };
}
