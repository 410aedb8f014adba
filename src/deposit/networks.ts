// Networks a deposit can be made for: genesis fork version (what deposits are signed over),
// chain id (checked against the RPC), and the deposit contract; and the Capella fork version,
// which voluntary exits are signed over (EIP-7044, see exit.ts).
import { PkmError } from '../errors.js';

export interface Network {
  readonly name: string;
  /** 0x + 8 hex digits. */
  readonly forkVersion: string;
  readonly chainId: bigint;
  readonly depositContract: string;
  /** Beacon-chain genesis (unix seconds) and genesis_validators_root: the slot clock and the
   * EIP-3076 interchange need them. Unknown for a custom network unless given. */
  readonly genesisTime?: number;
  readonly genesisValidatorsRoot?: string;
  /**
   * CAPELLA_FORK_VERSION (0x + 8 hex digits): since Deneb, EIP-7044 fixes the voluntary-exit
   * domain to it. Unknown for a custom network.
   */
  readonly capellaForkVersion?: string;
}

// The Capella fork versions below were checked against each network's published config.yaml:
// consensus-specs configs/mainnet.yaml (CAPELLA_FORK_VERSION: 0x03000000, epoch 194048), and
// eth-clients/sepolia (0x90000072), eth-clients/holesky (0x04017000) and eth-clients/hoodi
// (0x40000910) metadata/config.yaml.

export const NETWORKS: Readonly<Record<'mainnet' | 'sepolia' | 'holesky' | 'hoodi', Network>> = {
  mainnet: {
    name: 'mainnet',
    forkVersion: '0x00000000',
    chainId: 1n,
    depositContract: '0x00000000219ab540356cBB839Cbe05303d7705Fa',
    genesisTime: 1606824023,
    genesisValidatorsRoot: '0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95',
    capellaForkVersion: '0x03000000',
  },
  sepolia: {
    name: 'sepolia',
    forkVersion: '0x90000069',
    chainId: 11155111n,
    depositContract: '0x7f02C3E3c98b133055B8B348B2Ac625669Ed295D',
    genesisTime: 1655733600,
    genesisValidatorsRoot: '0xd8ea171f3c94aea21ebc42a1ed61052acf3f9209c00e4efbaaddac09ed9b8078',
    capellaForkVersion: '0x90000072',
  },
  holesky: {
    name: 'holesky',
    forkVersion: '0x01017000',
    chainId: 17000n,
    depositContract: '0x4242424242424242424242424242424242424242',
    genesisTime: 1695902400,
    genesisValidatorsRoot: '0x9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1',
    capellaForkVersion: '0x04017000',
  },
  hoodi: {
    name: 'hoodi',
    forkVersion: '0x10000910',
    chainId: 560048n,
    depositContract: '0x00000000219ab540356cBB839Cbe05303d7705Fa',
    genesisTime: 1742213400,
    genesisValidatorsRoot: '0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f',
    capellaForkVersion: '0x40000910',
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
