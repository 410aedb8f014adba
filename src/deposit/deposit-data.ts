// Deposit data for a new validator key: DepositMessage signed over the deposit domain, the
// signature verified before anything keeps it, and the launchpad's deposit_data.json fields.
import { PkmError } from '../errors.js';
import { toHex } from '../keys/bls.js';
import { type BlsBackend, bls } from '../keys/bls-backend.js';
import { blsCredentials, type CredentialsSpec, executionCredentials } from './credentials.js';
import type { DepositRecord } from './deposit-record.js';
import { forkVersionBytes, type Network } from './networks.js';
import {
  computeDomain,
  computeSigningRoot,
  DepositData,
  DepositMessage,
  DOMAIN_DEPOSIT,
} from './ssz.js';

export interface DepositConfig {
  readonly network: Network;
  readonly amountGwei: number;
  readonly credentials: CredentialsSpec;
}

export interface DepositKey {
  readonly secretKey: Uint8Array;
  readonly pubkey: string;
  /** The EIP-2334 withdrawal key's pubkey, for 0x00 credentials. */
  readonly withdrawalPubkey?: Uint8Array;
}

const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex.slice(2), 'hex'));

export function withdrawalCredentialsFor(key: DepositKey, spec: CredentialsSpec): Uint8Array {
  if (spec.type === 'execution') return executionCredentials(spec.address, spec.compounding);
  if (!key.withdrawalPubkey) {
    throw new PkmError(
      'INVALID_CONFIG',
      '0x00 credentials need a withdrawal key: pass --mnemonic-file or --withdrawal-address',
    );
  }
  return blsCredentials(key.withdrawalPubkey);
}

export function makeDeposit(
  key: DepositKey,
  config: DepositConfig,
  backend: BlsBackend = bls,
): DepositRecord {
  const pubkey = bytes(key.pubkey);
  const withdrawalCredentials = withdrawalCredentialsFor(key, config.credentials);
  const message = { pubkey, withdrawalCredentials, amount: config.amountGwei };
  const messageRoot = DepositMessage.hashTreeRoot(message);
  const domain = computeDomain(DOMAIN_DEPOSIT, forkVersionBytes(config.network));
  const signingRoot = computeSigningRoot(messageRoot, domain);
  const signature = backend.sign(key.secretKey, signingRoot);
  // Verified before it is stored: a bad signature would burn the deposit on chain.
  if (!backend.verify(pubkey, signingRoot, signature)) {
    throw new PkmError('INTERNAL', `the deposit signature for ${key.pubkey} does not verify`);
  }
  return {
    pubkey: key.pubkey,
    withdrawalCredentials: toHex(withdrawalCredentials),
    amount: config.amountGwei,
    signature: toHex(signature),
    depositMessageRoot: toHex(messageRoot),
    depositDataRoot: toHex(DepositData.hashTreeRoot({ ...message, signature })),
    forkVersion: config.network.forkVersion.toLowerCase(),
    networkName: config.network.name,
  };
}
