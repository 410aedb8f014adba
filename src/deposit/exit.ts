// Pre-signed voluntary exits: a SignedVoluntaryExit (consensus-specs phase0) for a validator
// whose index is known. Since Deneb, EIP-7044 fixes the domain of a voluntary exit to
// compute_domain(DOMAIN_VOLUNTARY_EXIT, CAPELLA_FORK_VERSION, genesis_validators_root), whatever
// fork the chain is on when it is submitted: an exit signed now stays valid in every later fork.
//
// The epoch is the earliest epoch at which the exit may be processed: process_voluntary_exit
// asserts get_current_epoch(state) >= voluntary_exit.epoch (and, apart from the message, that the
// validator has been active for SHARD_COMMITTEE_PERIOD epochs). Epoch 0 is therefore valid at
// any time; pkm exits export asks for it, as ethdo and the deposit CLIs do for exits kept
// for later.
import { PkmError } from '../errors.js';
import { toHex } from '../keys/bls.js';
import { type BlsBackend, bls } from '../keys/bls-backend.js';
import type { ExitChain } from './exit-chain.js';
import { computeDomain, computeSigningRoot, DOMAIN_VOLUNTARY_EXIT, VoluntaryExit } from './ssz.js';

/** The beacon API's SignedVoluntaryExit: numbers as decimal strings, bytes as 0x hex. */
export interface SignedVoluntaryExitJson {
  readonly message: { readonly epoch: string; readonly validator_index: string };
  readonly signature: string;
}

export interface ExitMessage {
  readonly epoch: bigint;
  readonly validatorIndex: bigint;
}

const bytes = (hex: string, n: number, what: string): Uint8Array => {
  if (!new RegExp(`^0x[0-9a-fA-F]{${n * 2}}$`).test(hex))
    throw new PkmError('INVALID_CONFIG', `${what} must be ${n} bytes as 0x hex, not "${hex}"`);
  return Uint8Array.from(Buffer.from(hex.slice(2), 'hex'));
};

/** compute_domain(DOMAIN_VOLUNTARY_EXIT, CAPELLA_FORK_VERSION, genesis_validators_root). */
export function exitDomain(chain: ExitChain): Uint8Array {
  return computeDomain(
    DOMAIN_VOLUNTARY_EXIT,
    bytes(chain.capellaForkVersion, 4, 'the Capella fork version'),
    bytes(chain.genesisValidatorsRoot, 32, 'genesis_validators_root'),
  );
}

/** compute_signing_root(VoluntaryExit, exitDomain(chain)). */
export function exitSigningRoot(exit: ExitMessage, chain: ExitChain): Uint8Array {
  return computeSigningRoot(VoluntaryExit.hashTreeRoot(exit), exitDomain(chain));
}

/**
 * Signs `exit` with the key; the signature is checked against the pubkey before it is
 * returned, as a wrong one would only show when the exit is needed and refused.
 */
export function signVoluntaryExit(
  key: { readonly secretKey: Uint8Array; readonly pubkey: string },
  exit: ExitMessage,
  chain: ExitChain,
  backend: BlsBackend = bls,
): SignedVoluntaryExitJson {
  const root = exitSigningRoot(exit, chain);
  const signature = backend.sign(key.secretKey, root);
  if (!backend.verify(bytes(key.pubkey, 48, 'the pubkey'), root, signature))
    throw new PkmError('INTERNAL', `the exit signature for ${key.pubkey} does not verify`);
  return {
    message: { epoch: exit.epoch.toString(), validator_index: exit.validatorIndex.toString() },
    signature: toHex(signature),
  };
}
