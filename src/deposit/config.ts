// Deposit flags, checked together: which network, which credentials, how much, and how the
// deposits are made (recorded only, or sent to the deposit contract).
import { PkmError } from '../errors.js';
import { type CredentialsSpec, parseAddress } from './credentials.js';
import type { DepositConfig } from './deposit-data.js';
import { NETWORKS, type Network } from './networks.js';

export const GWEI_PER_ETH = 1_000_000_000;

export interface SendConfig {
  readonly ethRpc: string;
  readonly funderKeyFile: string;
  readonly confirmations: number;
  /** How long a pod waits for its new keys' deposits to be mined. */
  readonly receiptTimeoutMs: number;
  /** Most new deposits per rolling hour: a guard on the funder's balance. */
  readonly maxDepositsPerHour: number;
  /** How often open deposits are checked (receipts, sends to retry, the funder's balance). */
  readonly reconcileMs: number;
}

export interface DepositSettings extends DepositConfig {
  readonly mode: 'record' | 'send';
  readonly send: SendConfig | undefined;
}

/** The flag values this needs, already read as text (undefined when unset). */
export interface DepositFlags {
  readonly network?: string | undefined;
  readonly forkVersion?: string | undefined;
  readonly chainId?: string | undefined;
  readonly depositContract?: string | undefined;
  readonly withdrawalAddress?: string | undefined;
  readonly compounding?: boolean | undefined;
  readonly depositAmountGwei?: string | undefined;
  readonly depositMode?: string | undefined;
  readonly ethRpc?: string | undefined;
  readonly funderKeyFile?: string | undefined;
  readonly confirmations?: number | undefined;
  readonly receiptTimeoutMs?: number | undefined;
  readonly maxDepositsPerHour?: number | undefined;
  readonly reconcileMs?: number | undefined;
}

const bad = (message: string) => new PkmError('INVALID_CONFIG', message);

/** The flags that name the chain. */
export type NetworkFlags = Pick<
  DepositFlags,
  'network' | 'forkVersion' | 'chainId' | 'depositContract'
> & {
  /** --genesis-validators-root: the chain's root for EIP-3076, where --network has none. */
  readonly genesisValidatorsRoot?: string | undefined;
};

const ROOT_RE = /^0x[0-9a-fA-F]{64}$/;

/**
 * The chain named by --network (undefined without it), with --genesis-validators-root: a known
 * network brings its own root, which the flag may repeat but never contradict (the root is what
 * every slashing-protection upload is checked against, EIP-3076); a custom network takes it.
 */
export function parseNetwork(flags: NetworkFlags): Network | undefined {
  const root = flags.genesisValidatorsRoot;
  if (root !== undefined && !ROOT_RE.test(root)) {
    throw bad(
      `--genesis-validators-root takes 32 bytes as 0x and 64 hex digits, not "${root}", e.g. --genesis-validators-root 0x212f13fc4df078b6cb7db228f1c8307566dcecf900867401a92023d7ba99cb5f`,
    );
  }
  if (flags.network === undefined) return undefined;
  const chain = network(flags);
  if (root === undefined) return chain;
  const own = chain.genesisValidatorsRoot?.toLowerCase();
  if (own !== undefined && own !== root.toLowerCase()) {
    throw bad(
      `--genesis-validators-root ${root.toLowerCase()} contradicts --network ${chain.name}, whose root is ${own}: drop one of them`,
    );
  }
  return { ...chain, genesisValidatorsRoot: root.toLowerCase() };
}

function network(flags: NetworkFlags): Network {
  const name = flags.network ?? '';
  if (name !== 'custom') {
    const known = new Map<string, Network>(Object.entries(NETWORKS)).get(name);
    if (!known)
      throw bad(
        `--network is one of ${Object.keys(NETWORKS).join(', ')} or custom, not "${name}", e.g. --network hoodi`,
      );
    return flags.depositContract
      ? { ...known, depositContract: parseAddress(flags.depositContract, 'deposit-contract') }
      : known;
  }
  const { forkVersion, chainId, depositContract } = flags;
  if (!forkVersion || !/^0x[0-9a-fA-F]{8}$/.test(forkVersion)) {
    throw bad('--network custom needs --fork-version (4 bytes), e.g. --fork-version 0x10000910');
  }
  if (!chainId || !/^\d+$/.test(chainId))
    throw bad('--network custom needs --chain-id, e.g. --chain-id 31337');
  if (!depositContract)
    throw bad(
      '--network custom needs --deposit-contract, e.g. --deposit-contract 0x4242424242424242424242424242424242424242',
    );
  return {
    name: 'custom',
    forkVersion: forkVersion.toLowerCase(),
    chainId: BigInt(chainId),
    depositContract: parseAddress(depositContract, 'deposit-contract'),
  };
}

function credentials(flags: DepositFlags, hasMnemonic: boolean): CredentialsSpec {
  if (flags.withdrawalAddress !== undefined) {
    return {
      type: 'execution',
      address: parseAddress(flags.withdrawalAddress, 'withdrawal-address'),
      compounding: flags.compounding === true,
    };
  }
  if (flags.compounding)
    throw bad('--compounding needs --withdrawal-address, e.g. --withdrawal-address 0x…');
  if (!hasMnemonic) {
    throw bad(
      'deposits need withdrawal credentials: pass --withdrawal-address 0x… (0x01), or --mnemonic-file for 0x00 credentials from the EIP-2334 withdrawal key',
    );
  }
  return { type: 'bls' };
}

function amount(flags: DepositFlags, compounding: boolean): number {
  const text = flags.depositAmountGwei ?? String(32 * GWEI_PER_ETH);
  const gwei = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  // EIP-7251: a compounding (0x02) validator may hold up to 2048 ETH; others up to 32 ETH.
  const [min, max] = compounding ? [32, 2048] : [1, 32];
  if (!Number.isSafeInteger(gwei) || gwei < min * GWEI_PER_ETH || gwei > max * GWEI_PER_ETH) {
    throw bad(
      `--deposit-amount-gwei must be from ${min} to ${max} ETH in gwei${compounding ? ' with --compounding' : ''}, e.g. --deposit-amount-gwei 32000000000`,
    );
  }
  return gwei;
}

/**
 * Deposits are made for the chain --network names, once withdrawal credentials can be made
 * (--withdrawal-address, or --mnemonic-file for 0x00) or --deposit-mode asks for them. A
 * --network with neither names the chain only (the genesis root of slashing protection, the
 * fences' slot clock, the liveness gate): keys then carry no deposit data. Without --network,
 * there are no deposits.
 */
export function parseDepositSettings(
  flags: DepositFlags,
  hasMnemonic: boolean,
  chain: Network | undefined = parseNetwork(flags),
): DepositSettings | undefined {
  const mode = flags.depositMode ?? 'record';
  if (mode !== 'record' && mode !== 'send')
    throw bad(`--deposit-mode is record or send, not "${mode}"`);
  if (chain === undefined) {
    if (mode === 'send') throw bad('--deposit-mode send needs --network, e.g. --network hoodi');
    return undefined;
  }
  const asked =
    flags.withdrawalAddress !== undefined ||
    hasMnemonic ||
    flags.depositMode !== undefined ||
    flags.compounding === true;
  if (!asked) return undefined;
  const creds = credentials(flags, hasMnemonic);
  const base = {
    network: chain,
    credentials: creds,
    amountGwei: amount(flags, creds.type === 'execution' && creds.compounding),
  };
  if (mode === 'record') return { ...base, mode, send: undefined };
  if (!flags.ethRpc)
    throw bad('--deposit-mode send needs --eth-rpc, e.g. --eth-rpc http://127.0.0.1:8545');
  if (!flags.funderKeyFile)
    throw bad(
      "--deposit-mode send needs --funder-key-file (a file holding the funder's private key)",
    );
  return {
    ...base,
    mode,
    send: {
      ethRpc: flags.ethRpc,
      funderKeyFile: flags.funderKeyFile,
      confirmations: flags.confirmations ?? 1,
      receiptTimeoutMs: flags.receiptTimeoutMs ?? 5 * 60_000,
      maxDepositsPerHour: flags.maxDepositsPerHour ?? 100,
      reconcileMs: flags.reconcileMs ?? 10_000,
    },
  };
}
