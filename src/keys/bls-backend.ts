// One small BLS interface (secret -> pubkey, sign, verify) with two implementations that give
// byte-identical results: @noble/curves (pure JS, always there) and @chainsafe/blst (native,
// an optional dependency, ~50x faster). Both use Ethereum's proof-of-possession ciphersuite.
import { bls12_381 } from '@noble/curves/bls12-381.js';

/** consensus-specs phase0 BLS: the G2 proof-of-possession ciphersuite. noble's default differs. */
export const ETH_DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';

export interface BlsBackend {
  readonly name: 'noble' | 'blst';
  /** 48-byte compressed G1 public key. */
  publicKey(secretKey: Uint8Array): Uint8Array;
  /** 96-byte compressed G2 signature. */
  sign(secretKey: Uint8Array, message: Uint8Array): Uint8Array;
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
}

const noble = bls12_381.longSignatures;

export const nobleBackend: BlsBackend = {
  name: 'noble',
  publicKey: (sk) => noble.getPublicKey(sk).toBytes(true),
  sign: (sk, msg) => noble.sign(noble.hash(msg, ETH_DST), sk).toBytes(true),
  verify: (pk, msg, sig) => {
    try {
      return noble.verify(sig, noble.hash(msg, ETH_DST), pk);
    } catch {
      return false; // a malformed point is not a valid signature
    }
  },
};

/** The native backend, or undefined where @chainsafe/blst is not installed or does not load. */
export async function loadBlstBackend(): Promise<BlsBackend | undefined> {
  let blst: typeof import('@chainsafe/blst');
  try {
    blst = await import('@chainsafe/blst');
  } catch {
    return undefined; // optional dependency: noble serves instead
  }
  return {
    name: 'blst',
    publicKey: (sk) => blst.SecretKey.fromBytes(sk).toPublicKey().toBytes(true),
    sign: (sk, msg) => blst.SecretKey.fromBytes(sk).sign(msg).toBytes(true),
    verify: (pk, msg, sig) => {
      try {
        return blst.verify(
          msg,
          blst.PublicKey.fromBytes(pk, true),
          blst.Signature.fromBytes(sig, true),
        );
      } catch {
        return false;
      }
    },
  };
}

/** The backend in use: blst when it loads, unless PKM_BLS_BACKEND=noble asks for the pure one. */
export const bls: BlsBackend =
  process.env.PKM_BLS_BACKEND === 'noble'
    ? nobleBackend
    : ((await loadBlstBackend()) ?? nobleBackend);
