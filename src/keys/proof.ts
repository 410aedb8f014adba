// Proof of possession for heartbeat claims (DESIGN.md "Safety rules"): a pod that reports a key
// the store does not record as its own shows that it holds the secret by signing a challenge
// bound to the server's boot token, the pod's identity and the pubkey. The domain-separation
// tag is pkm's own (RFC 9380 section 3.1: one DST per application), never Ethereum's
// `BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_`, so a proof can never count as a consensus
// signature (a block, an attestation, a deposit), nor a consensus signature as a proof.
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { ETH_DST } from './bls-backend.js';

export const PROOF_DST = 'PKM_HEARTBEAT_POSSESSION_BLS12381G2_XMD:SHA-256_SSWU_RO_';

if ((PROOF_DST as string) === ETH_DST) throw new Error('the proof DST must not be Ethereum’s');

/** Versioned, and each field on its own line: none of them may hold a newline. */
const PREFIX = 'pkm heartbeat proof of possession v1';

/** The bytes a proof signs: the boot token, `namespace/pod`, and the 0x-hex pubkey. */
export function proofMessage(bootToken: string, identity: string, pubkey: string): Uint8Array {
  for (const field of [bootToken, identity, pubkey]) {
    if (field === '' || /[\r\n]/.test(field)) throw new Error('a proof field must be one line');
  }
  return new TextEncoder().encode(`${PREFIX}\n${bootToken}\n${identity}\n${pubkey.toLowerCase()}`);
}

/**
 * A 96-byte compressed G2 signature, 0x-hex. @noble/curves because @chainsafe/blst signs only
 * under Ethereum's DST; a proof is rare (a claim the store cannot place), so its ~50 ms is fine.
 */
export function signProof(secretKey: Uint8Array, message: Uint8Array): string {
  const sig = bls12_381.longSignatures.sign(
    bls12_381.longSignatures.hash(message, PROOF_DST),
    secretKey,
  );
  return `0x${Buffer.from(sig.toBytes(true)).toString('hex')}`;
}
