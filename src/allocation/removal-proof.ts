// When a key's removal from its validator client proves that no copy of it signs there any more
// (DESIGN.md "Safety rules": "A key deleted from a running VC through its Keymanager API, with
// slashing protection covering it, may move to another pod at once; without that proof the
// rules above hold"; issue 16, point 2). The evidence is the VC's own answer to
// DELETE /eth/v1/keystores (specs/keymanager-APIs/apis/local_keystores.yaml): the key's status,
// and the EIP-3076 interchange that came back with it.
//
// Proof needs all of:
//   - status `deleted` (the key was active and removed) or `not_active` (removed before, its
//     protection kept): the spec's DELETE "must guarantee that key(s) can not produce any more
//     signature" before it answers. `not_found` says nothing of what the VC signed (a VC that
//     lost its slashing database answers it too); `error` means it could not stop the key;
//   - the chain's genesis_validators_root known to the server, so that the interchange is known
//     to be this chain's (api/interchange.ts);
//   - an entry for the key in the interchange that covers it: for a key that was active, a
//     non-empty one (a VC that answers `deleted` with an empty record for a key that signed has
//     lost its history: Prysm #17408), and never below what the server had on record for it.
//     "Active" is what the server can know: protection on record (an earlier upload), or, with
//     --beacon-url, a validator the chain shows active or live (the gate fails closed: no
//     answer counts as active);
//   - for a key with no entry or an empty one (never active), a known genesis time: the new
//     holder then gets a fence at the current slot (protection.ts handOut), so that nothing it
//     signs can clash with what the old one may have signed unrecorded.
import type { Protection } from './interchange.js';

/** The statuses of DeleteKeysResponse (and of DeleteRemoteKeysResponse, without not_active). */
export type VcDeleteStatus = 'deleted' | 'not_active' | 'not_found' | 'error';

export interface RemovalEvidence {
  readonly status: VcDeleteStatus;
  /** The key's entry in the returned interchange, summarised; undefined: it has none. */
  readonly entry: Protection | undefined;
}

/** What the server knows of the key and the chain. */
export interface KeyPast {
  /** Slashing protection on record for the key (uploads), if any. */
  readonly recorded: Protection | undefined;
  /** With --beacon-url: the chain shows it active or live, or the gate could not say. */
  readonly activeOnChain: boolean | undefined;
  /** The chain's genesis_validators_root is known (configured, or fixed by an admin). */
  readonly rootKnown: boolean;
  /** The chain's genesis time is known: a hand-off carries a fence at the current slot. */
  readonly fenceable: boolean;
}

export type Verdict =
  /** It may go to another pod at once. */
  | { readonly kind: 'proof' }
  /** It left the VC, but nothing proves what it signed: it cools, then the liveness gate. */
  | { readonly kind: 'no-proof'; readonly why: string }
  /** The VC could not stop it: nothing changes, it stays leaving. */
  | { readonly kind: 'not-removed'; readonly why: string };

const FIELDS = ['lastBlockSlot', 'lastSourceEpoch', 'lastTargetEpoch'] as const;

function isEmpty(p: Protection | undefined): boolean {
  return p === undefined || FIELDS.every((f) => p[f] === undefined);
}

/** The entry reaches every mark the record has (the stricter of both is what moves). */
function covers(entry: Protection, recorded: Protection | undefined): boolean {
  return FIELDS.every((f) => {
    const want = recorded?.[f];
    const got = entry[f];
    return want === undefined || (got !== undefined && got >= want);
  });
}

export function judgeRemoval(e: RemovalEvidence, past: KeyPast): Verdict {
  if (e.status === 'error')
    return {
      kind: 'not-removed',
      why: 'the validator client could not delete it (status error): it may still sign there',
    };
  if (e.status === 'not_found')
    return {
      kind: 'no-proof',
      why: 'the validator client does not know it (not_found): its answer says nothing of what it signed',
    };
  if (!past.rootKnown)
    return {
      kind: 'no-proof',
      why: 'the server knows no genesis_validators_root, so the returned interchange cannot be checked (start it with --network or --genesis-validators-root)',
    };
  if (!isEmpty(e.entry)) {
    if (e.entry !== undefined && covers(e.entry, past.recorded)) return { kind: 'proof' };
    return {
      kind: 'no-proof',
      why: 'the returned slashing protection is below what the server had on record for it: the validator client lost some of its history',
    };
  }
  const active = !isEmpty(past.recorded) || past.activeOnChain === true;
  if (active)
    return {
      kind: 'no-proof',
      why: 'the key was active, and the validator client returned no slashing protection for it (Prysm #17408): its history is lost',
    };
  if (!past.fenceable)
    return {
      kind: 'no-proof',
      why: 'no slashing protection came back, and the server knows no genesis time to fence its next holder with (--network)',
    };
  return { kind: 'proof' };
}
