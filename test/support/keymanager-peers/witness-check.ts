// Reads the witness ledger back and finds what must never happen (issue 16, point 3: "each key
// in exactly one validator client or in none, never in two"):
//   - two-places: a key's keystore in two peers at once (two VCs as local keys, a VC and a
//     signer, two signers);
//   - two-signers: two VCs able to sign with a key at once. A VC can sign with a remote key
//     while both exist: its remotekey registration, and the key in the signer at that URL.
//     So a registration alone, or a signer's key that no VC points at, signs nothing;
//   - signed-unheld: a fake signed with a key it did not hold at that instant;
//   - double-vote: two different attestations by one key for one target epoch (slashable).
// A peer killed with kill -9 keeps what it held: its data dir still has the keys and a restart
// signs with them again. Its next start records a snapshot; `Witness.wiped` ends it for good.
import { normaliseUrl, type Stamped, Witness } from './witness.js';

export type ViolationKind = 'two-places' | 'two-signers' | 'signed-unheld' | 'double-vote';

export interface Violation {
  readonly kind: ViolationKind;
  readonly pubkey: string;
  /** The monotonic instant (ns) it began. */
  readonly at: bigint;
  readonly peers: readonly string[];
}

/** What each peer holds, replayed event by event. */
class Holdings {
  readonly local = new Map<string, Set<string>>(); // peer -> pubkeys
  readonly remote = new Map<string, Map<string, string>>(); // VC -> pubkey -> signer URL
  readonly role = new Map<string, 'vc' | 'signer'>();
  readonly signerAt = new Map<string, string>(); // URL -> signer peer

  localOf(peer: string): Set<string> {
    const s = this.local.get(peer) ?? new Set<string>();
    this.local.set(peer, s);
    return s;
  }

  remoteOf(peer: string): Map<string, string> {
    const m = this.remote.get(peer) ?? new Map<string, string>();
    this.remote.set(peer, m);
    return m;
  }

  /** The peers whose storage has the key. */
  places(pubkey: string): string[] {
    return [...this.local].filter(([, keys]) => keys.has(pubkey)).map(([peer]) => peer);
  }

  /** The VCs that can sign with the key: as a local key, or through a signer that has it. */
  signers(pubkey: string): string[] {
    const out = new Set(this.places(pubkey).filter((p) => this.role.get(p) === 'vc'));
    for (const [vc, keys] of this.remote) {
      const url = keys.get(pubkey);
      const signer = url === undefined ? undefined : this.signerAt.get(url);
      if (signer !== undefined && this.local.get(signer)?.has(pubkey)) out.add(vc);
    }
    return [...out];
  }

  /** Every key the ledger has seen (for a re-check after a signer moves). */
  allKeys(): Set<string> {
    const out = new Set<string>();
    for (const keys of this.local.values()) for (const k of keys) out.add(k);
    for (const keys of this.remote.values()) for (const k of keys.keys()) out.add(k);
    return out;
  }
}

/** Applies one event; returns the keys whose placement may have changed. */
function apply(h: Holdings, e: Stamped): Iterable<string> {
  switch (e.kind) {
    case 'hold':
      h.role.set(e.peer, e.role);
      h.localOf(e.peer).add(e.pubkey);
      return [e.pubkey];
    case 'release':
      h.localOf(e.peer).delete(e.pubkey);
      return [e.pubkey];
    case 'remote-hold':
      h.role.set(e.peer, 'vc');
      h.remoteOf(e.peer).set(e.pubkey, normaliseUrl(e.url));
      return [e.pubkey];
    case 'remote-release':
      h.remoteOf(e.peer).delete(e.pubkey);
      return [e.pubkey];
    case 'snapshot':
    case 'wiped': {
      const touched = new Set([...h.localOf(e.peer), ...h.remoteOf(e.peer).keys()]);
      h.local.set(e.peer, new Set(e.kind === 'snapshot' ? e.local : []));
      const remote = e.kind === 'snapshot' ? e.remote : [];
      h.remote.set(e.peer, new Map(remote.map((r) => [r.pubkey, normaliseUrl(r.url)])));
      if (e.kind === 'snapshot') h.role.set(e.peer, e.role);
      for (const k of [...(e.kind === 'snapshot' ? e.local : []), ...remote.map((r) => r.pubkey)])
        touched.add(k);
      return touched;
    }
    case 'listening':
      h.role.set(e.peer, e.role);
      for (const [url, peer] of h.signerAt) if (peer === e.peer) h.signerAt.delete(url);
      if (e.role === 'signer') h.signerAt.set(normaliseUrl(e.url), e.peer);
      return h.allKeys();
    case 'signed':
      return [];
  }
}

/** Every violation in the events (time-ordered, as Witness.read gives them). */
export function findViolations(events: readonly Stamped[]): Violation[] {
  const h = new Holdings();
  const out: Violation[] = [];
  const open = new Map<string, string>(); // kind:pubkey -> the peers last reported
  const votes = new Map<string, Set<string>>(); // pubkey:target -> signing roots
  const report = (kind: ViolationKind, pubkey: string, peers: string[], at: bigint) => {
    const id = `${kind}:${pubkey}`;
    const who = peers.sort().join(',');
    if (peers.length < 2) open.delete(id);
    else if (open.get(id) !== who) {
      open.set(id, who);
      out.push({ kind, pubkey, at, peers });
    }
  };
  for (const e of events) {
    if (e.kind === 'signed') {
      const held =
        e.via === undefined
          ? h.local.get(e.peer)?.has(e.pubkey) === true
          : h.remote.get(e.peer)?.get(e.pubkey) === normaliseUrl(e.via);
      if (!held) out.push({ kind: 'signed-unheld', pubkey: e.pubkey, at: e.t, peers: [e.peer] });
      const id = `${e.pubkey}:${e.target}`;
      const roots = votes.get(id) ?? new Set<string>();
      votes.set(id, roots.add(e.root));
      if (roots.size === 2)
        out.push({ kind: 'double-vote', pubkey: e.pubkey, at: e.t, peers: [e.peer] });
      continue;
    }
    for (const pubkey of apply(h, e)) {
      report('two-places', pubkey, h.places(pubkey), e.t);
      report('two-signers', pubkey, h.signers(pubkey), e.t);
    }
  }
  return out;
}

/** Who has a key after the events up to `at` (all of them by default). */
export function holdersOf(
  events: readonly Stamped[],
  pubkey: string,
  at?: bigint,
): { places: string[]; signers: string[] } {
  const h = new Holdings();
  for (const e of events) if (at === undefined || e.t <= at) apply(h, e);
  return { places: h.places(pubkey), signers: h.signers(pubkey) };
}

/** Throws, naming each violation, unless the ledger shows every key in at most one place. */
export function assertNoKeyInTwoPlaces(witness: Witness | readonly Stamped[]): void {
  const events = witness instanceof Witness ? witness.read() : witness;
  const found = findViolations(events);
  if (found.length === 0) return;
  const lines = found.map(
    (v) => `${v.kind} ${v.pubkey.slice(0, 12)}… at ${v.at}: ${v.peers.join(', ')}`,
  );
  throw new Error(`the witness saw ${found.length} violation(s):\n${lines.join('\n')}`);
}
