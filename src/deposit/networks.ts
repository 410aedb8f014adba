// Networks a deposit can be made for: genesis fork version (what deposits are signed over),
// chain id (checked against the RPC), and the deposit contract.
import { PkmError } from '../errors.js';

export interface Network {
  readonly name: string;
  /** 0x + 8 hex digits. */
  readonly forkVersion: string;
  readonly chainId: bigint;
  readonly depositContract: string;
}

export const NETWORKS: Readonly<Record<'mainnet' | 'sepolia' | 'holesky' | 'hoodi', Network>> = {
  mainnet: {
    name: 'mainnet',
    forkVersion: '0x00000000',
    chainId: 1n,
    depositContract: '0x00000000219ab540356cBB839Cbe05303d7705Fa',
  },
  sepolia: {
    name: 'sepolia',
    forkVersion: '0x90000069',
    chainId: 11155111n,
    depositContract: '0x7f02C3E3c98b133055B8B348B2Ac625669Ed295D',
  },
  holesky: {
    name: 'holesky',
    forkVersion: '0x01017000',
    chainId: 17000n,
    depositContract: '0x4242424242424242424242424242424242424242',
  },
  hoodi: {
    name: 'hoodi',
    forkVersion: '0x10000910',
    chainId: 560048n,
    depositContract: '0x00000000219ab540356cBB839Cbe05303d7705Fa',
  },
};

export const NETWORK_NAMES = [...Object.keys(NETWORKS), 'custom'] as const;

export function forkVersionBytes(network: Network): Uint8Array {
  if (!/^0x[0-9a-f]{8}$/i.test(network.forkVersion)) {
    throw new PkmError(
      'INVALID_CONFIG',
      `--fork-version takes 4 bytes as hex, e.g. --fork-version 0x10000910`,
    );
  }
  return Uint8Array.from(Buffer.from(network.forkVersion.slice(2), 'hex'));
}
