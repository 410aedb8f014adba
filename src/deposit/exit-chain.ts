// What voluntary exits are signed over (EIP-7044: the Capella fork version and the genesis
// validators root) and the chain's epoch: apart from the signing (exit.ts), whose SSZ a server
// loads only when it signs an exit (issue 17, point 5).
import type { Network } from './networks.js';

/** What an exit is signed over: the chain's Capella fork version and genesis root (EIP-7044). */
export interface ExitChain {
  readonly name: string;
  /** 0x + 8 hex digits. */
  readonly capellaForkVersion: string;
  /** 0x + 64 hex digits. */
  readonly genesisValidatorsRoot: string;
  /** Beacon-chain genesis (unix seconds), for the current epoch; unknown on a custom network. */
  readonly genesisTime?: number;
}

/** The exit chain of --network, or undefined when the network lacks what exits are signed over. */
export function exitChainOf(network: Network | undefined): ExitChain | undefined {
  const fork = network?.capellaForkVersion;
  const root = network?.genesisValidatorsRoot;
  if (network === undefined || fork === undefined || root === undefined) return undefined;
  return {
    name: network.name,
    capellaForkVersion: fork,
    genesisValidatorsRoot: root,
    ...(network.genesisTime === undefined ? {} : { genesisTime: network.genesisTime }),
  };
}

/** The named networks all run the mainnet preset's clock: 12 s slots, 32 slots an epoch. */
const SECONDS_PER_EPOCH = 12 * 32;

/** The chain's current epoch by the wall clock, or undefined where its genesis is unknown. */
export function currentEpoch(chain: ExitChain, nowMs: number): bigint | undefined {
  if (chain.genesisTime === undefined) return undefined;
  const seconds = Math.floor(nowMs / 1000) - chain.genesisTime;
  return BigInt(Math.max(0, Math.floor(seconds / SECONDS_PER_EPOCH)));
}
