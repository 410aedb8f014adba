// The consensus-specs containers a deposit and a voluntary exit need, as @chainsafe/ssz types
// (phase0).
import { ByteVectorType, ContainerType, UintBigintType, UintNumberType } from '@chainsafe/ssz';

const Bytes4 = new ByteVectorType(4);
const Bytes32 = new ByteVectorType(32);
const Bytes48 = new ByteVectorType(48);
const Bytes96 = new ByteVectorType(96);
/** Gwei as uint64; deposits top out at 2048 ETH = 2.048e12 gwei, well inside 2^53. */
const Gwei = new UintNumberType(8);

export const DepositMessage = new ContainerType({
  pubkey: Bytes48,
  withdrawalCredentials: Bytes32,
  amount: Gwei,
});

export const DepositData = new ContainerType({
  pubkey: Bytes48,
  withdrawalCredentials: Bytes32,
  amount: Gwei,
  signature: Bytes96,
});

/** Epoch and ValidatorIndex are uint64: bigint, so that every value the wire allows is exact. */
const Uint64 = new UintBigintType(8);

/** VoluntaryExit (consensus-specs phase0): the message a SignedVoluntaryExit signs. */
export const VoluntaryExit = new ContainerType({
  epoch: Uint64,
  validatorIndex: Uint64,
});

export const ForkData = new ContainerType({
  currentVersion: Bytes4,
  genesisValidatorsRoot: Bytes32,
});

export const SigningData = new ContainerType({
  objectRoot: Bytes32,
  domain: Bytes32,
});

/** DOMAIN_DEPOSIT (consensus-specs phase0). */
export const DOMAIN_DEPOSIT = Uint8Array.of(0x03, 0x00, 0x00, 0x00);

/** DOMAIN_VOLUNTARY_EXIT (consensus-specs phase0). */
export const DOMAIN_VOLUNTARY_EXIT = Uint8Array.of(0x04, 0x00, 0x00, 0x00);

/**
 * compute_domain(domain_type, fork_version, genesis_validators_root): the domain type, then
 * the first 28 bytes of the fork data root. Deposits use the genesis fork version and a zero
 * root, so that they are valid before genesis and on every fork.
 */
export function computeDomain(
  domainType: Uint8Array,
  forkVersion: Uint8Array,
  genesisValidatorsRoot: Uint8Array = new Uint8Array(32),
): Uint8Array {
  const forkDataRoot = ForkData.hashTreeRoot({
    currentVersion: forkVersion,
    genesisValidatorsRoot,
  });
  const domain = new Uint8Array(32);
  domain.set(domainType, 0);
  domain.set(forkDataRoot.subarray(0, 28), 4);
  return domain;
}

/** compute_signing_root(ssz_object, domain) = hash_tree_root(SigningData(object_root, domain)). */
export function computeSigningRoot(objectRoot: Uint8Array, domain: Uint8Array): Uint8Array {
  return SigningData.hashTreeRoot({ objectRoot, domain });
}
