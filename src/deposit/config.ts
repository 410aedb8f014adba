// Deposit flags, checked together: which network, which credentials, how much, and how the
// deposits are made (recorded only, or sent to the deposit contract).
import { PkmError } from '../errors.js';
import { type CredentialsSpec, parseAddress } from './credentials.js';
import { type DepositConfig, GWEI_PER_ETH } from './deposit-data.js';
import { NETWORKS, type Network } from './networks.js';

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

function network(flags: DepositFlags): Network {
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

/** Deposits are on when a --network is given; without one, keys carry no deposit data. */
export function parseDepositSettings(
  flags: DepositFlags,
  hasMnemonic: boolean,
): DepositSettings | undefined {
  const mode = flags.depositMode ?? 'record';
  if (mode !== 'record' && mode !== 'send')
    throw bad(`--deposit-mode is record or send, not "${mode}"`);
  if (flags.network === undefined) {
    if (mode === 'send') throw bad('--deposit-mode send needs --network, e.g. --network hoodi');
    return undefined;
  }
  const creds = credentials(flags, hasMnemonic);
  const base = {
    network: network(flags),
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
