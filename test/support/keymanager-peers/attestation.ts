// The fakes' stand-in for an attestation: the epoch clock of a chain, and a signing root that
// stands for AttestationData (source, target, and a head vote). The head differs from peer to
// peer, as two nodes' views of the chain do, so two peers voting for one target with one key
// sign two different roots: a double vote, which the witness flags. The root's prefix keeps it
// apart from any real signing root; it is signed under Ethereum's DST (src/keys/bls-backend).
import { createHash } from 'node:crypto';

export interface ChainClock {
  /** Unix seconds of slot 0. */
  readonly genesisTime: number;
  /** Milliseconds per slot: 12000 on mainnet; tests shorten it to see epochs pass. */
  readonly slotMs: number;
}

export const SLOTS_PER_EPOCH = 32;

export function epochAt(clock: ChainClock, nowMs = Date.now()): number {
  const slot = Math.floor((nowMs - clock.genesisTime * 1000) / clock.slotMs);
  return Math.max(0, Math.floor(slot / SLOTS_PER_EPOCH));
}

/** The 32 bytes a peer's attestation for `target` (source = target - 1) signs. */
export function attestationRoot(
  genesisValidatorsRoot: string,
  peer: string,
  source: number,
  target: number,
): Uint8Array {
  const head = createHash('sha256').update(`head ${peer} ${target}`).digest('hex');
  const text = `pkm fake attestation v1\n${genesisValidatorsRoot}\n${source}\n${target}\n${head}`;
  return createHash('sha256').update(text).digest();
}

export const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`;
