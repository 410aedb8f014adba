// KDF profiles for the keystores `pkm client` writes (`--kdf-profile`, DESIGN.md "CLI").
//
// standard: EIP-2335's recommended costs (scrypt n=2^18 r=8 p=1, or pbkdf2 c=2^18). The KDF
//   then slows down whoever holds a keystore but not its password.
// fast: pbkdf2-hmac-sha256 with c=1, dklen=32, a 32-byte salt. Meant for a memory-backed
//   emptyDir that holds the password beside the keystore: whoever reads one reads the other, so
//   the KDF's cost protects nothing the volume's own protection does not, while every validator
//   client pays it again at every start (issue 17).
//
// Why pbkdf2 c=1: the lowest cost every validator client opens. What each one checks when it
// reads a keystore (read in their sources):
// - Nimbus (status-im/nimbus-eth2, beacon_chain/spec/keystore.nim, `areValid`): scrypt only at
//   exactly n=2^18, r=8, p=1, dklen=32, so a cheaper scrypt is refused ("Invalid keystore");
//   pbkdf2 needs c != 0, dklen >= 32 and a non-empty salt whose hex length is a multiple of 16.
//   Its reader also wants "function" before "params" and "message" in each module (ours does).
//   Nimbus's own test-only "Fast" keystores are pbkdf2 c=1.
// - Lighthouse (sigp/lighthouse, crypto/eth2_keystore/src/keystore.rs, `validate_parameters`):
//   pbkdf2 needs dklen == 32, 1 <= c <= 80,000,000 and a non-empty salt; below c=262,144 it
//   prints a warning per keystore and goes on. scrypt: n > 1 a power of 2, r, p >= 1.
// - Teku (Consensys/teku, infrastructure/bls-keystore .../model/Pbkdf2Param.java, KdfParam.java,
//   SCryptParam.java): pbkdf2 c >= 1, dklen >= 32, a salt; scrypt n > 1 a power of 2 (and
//   n < 65536 when r == 1), r, p >= 1. The pubkey field is required.
// - Web3Signer (Consensys/web3signer, bls-keystore/.../model/Pbkdf2Param.java): Teku's rules,
//   c >= 1, dklen >= 32.
// - Lodestar (@chainsafe/bls-keystore, its JSON schema and kdf/pbkdf2.ts): c an integer >= 0,
//   run by node:crypto's pbkdf2Sync, which takes c >= 1; a scrypt salt must be 32 bytes.
// - Prysm (OffchainLabs/prysm, validator/keymanager/local/import.go, through
//   wealdtech/go-eth2-wallet-encryptor-keystorev4 decrypt.go): no bound on c; the derived key
//   must be >= 32 bytes; golang.org/x/crypto/scrypt takes n > 1 a power of 2.
// So scrypt cannot be cheapened at all (Nimbus), and pbkdf2 goes down to c=1 everywhere.
import { KDF_COSTS, type KdfCosts, type KdfName } from './keystore.js';

export const KDF_PROFILES = ['standard', 'fast'] as const;
export type KdfProfile = (typeof KDF_PROFILES)[number];

/**
 * The fast profile's costs. pbkdf2 is the fast one; scrypt keeps EIP-2335's costs, the only
 * ones Nimbus opens, so even a scrypt keystore written under this profile opens everywhere.
 */
export const FAST_KDF_COSTS: KdfCosts = Object.freeze({
  scrypt: KDF_COSTS.scrypt,
  pbkdf2: Object.freeze({ c: 1 }),
});

/** The KDF each profile writes unless --kdf says otherwise. */
export const PROFILE_KDF: Readonly<Record<KdfProfile, KdfName>> = Object.freeze({
  standard: 'scrypt',
  fast: 'pbkdf2',
});

/** The costs a profile writes keystores at. */
export function profileCosts(profile: KdfProfile): KdfCosts {
  return profile === 'fast' ? FAST_KDF_COSTS : KDF_COSTS;
}
