// The execution-layer side of deposits, with ethers 6: the deposit call, signed locally so that
// its hash is known (and stored) before it is sent, then broadcast, then its receipt.
import { FetchRequest, Interface, JsonRpcProvider, keccak256, Network, Wallet } from 'ethers';
import { PkmError } from '../errors.js';
import type { DepositRecord } from './deposit-record.js';

/** The deposit contract's entry point and event (consensus-specs deposit contract). */
export const DEPOSIT_ABI = [
  'function deposit(bytes pubkey, bytes withdrawal_credentials, bytes signature, bytes32 deposit_data_root) payable',
  'event DepositEvent(bytes pubkey, bytes withdrawal_credentials, bytes amount, bytes signature, bytes index)',
] as const;
const depositInterface = new Interface(DEPOSIT_ABI);

/** A deposit costs about 60k gas; the limit leaves room (only the gas used is paid). */
const DEPOSIT_GAS_LIMIT = 200_000n;
const RPC_TIMEOUT_MS = 15_000;

export type SendFailure = 'unreachable' | 'funds' | 'known' | 'nonce' | 'rejected';

/** What went wrong with an RPC call, from ethers' error codes and the node's message. */
export function classifyError(err: unknown): SendFailure {
  const e = err as { code?: string; message?: string; error?: { message?: string } } | undefined;
  const text = `${e?.message ?? ''} ${e?.error?.message ?? ''}`.toLowerCase();
  if (e?.code === 'INSUFFICIENT_FUNDS' || text.includes('insufficient funds')) return 'funds';
  if (text.includes('already known') || text.includes('known transaction')) return 'known';
  if (e?.code === 'NONCE_EXPIRED' || text.includes('nonce too low')) return 'nonce';
  const network = ['NETWORK_ERROR', 'TIMEOUT', 'SERVER_ERROR', 'ECONNREFUSED', 'ECONNRESET'];
  if (
    (e?.code && network.includes(e.code)) ||
    /econnrefused|econnreset|fetch failed|socket hang up|timeout/.test(text)
  ) {
    return 'unreachable';
  }
  return 'rejected';
}

export interface ChainConfig {
  readonly rpcUrl: string;
  readonly funderKey: string;
  readonly contract: string;
  readonly chainId: bigint;
  readonly confirmations: number;
}

export interface Fees {
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
}

export class DepositChain {
  private constructor(
    readonly provider: JsonRpcProvider,
    private readonly wallet: Wallet,
    private readonly config: ChainConfig,
  ) {}

  /** Connects and checks that the RPC serves the configured chain; refuses start-up if not. */
  static async connect(config: ChainConfig): Promise<DepositChain> {
    const request = new FetchRequest(config.rpcUrl);
    request.timeout = RPC_TIMEOUT_MS;
    const provider = new JsonRpcProvider(request, Network.from(config.chainId), {
      staticNetwork: true,
      // No answer cache: nonces, balances and receipts must be read fresh.
      cacheTimeout: -1,
    });
    let chainId: bigint;
    try {
      chainId = BigInt((await provider.send('eth_chainId', [])) as string);
    } catch (cause) {
      provider.destroy();
      throw new PkmError(
        'INVALID_CONFIG',
        `--eth-rpc ${config.rpcUrl} does not answer: start it, or fix the URL`,
        { cause },
      );
    }
    if (chainId !== config.chainId) {
      provider.destroy();
      throw new PkmError(
        'INVALID_CONFIG',
        `--eth-rpc serves chain id ${chainId}, but the network's is ${config.chainId}: point --eth-rpc at the right chain`,
      );
    }
    let wallet: Wallet;
    try {
      wallet = new Wallet(config.funderKey, provider);
    } catch {
      provider.destroy();
      throw new PkmError(
        'INVALID_CONFIG',
        '--funder-key-file does not hold a private key (32 bytes as hex)',
      );
    }
    return new DepositChain(provider, wallet, config);
  }

  get funder(): string {
    return this.wallet.address;
  }

  private call(d: DepositRecord) {
    return {
      to: this.config.contract,
      data: depositInterface.encodeFunctionData('deposit', [
        d.pubkey,
        d.withdrawalCredentials,
        d.signature,
        d.depositDataRoot,
      ]),
      value: BigInt(d.amount) * 10n ** 9n,
    };
  }

  /**
   * Checks the funder can pay (value and the most gas it may cost), then runs the deposit as a
   * call: the revert reason, or undefined when it would succeed. Throws INSUFFICIENT_FUNDS.
   */
  async simulate(d: DepositRecord, fees: Fees): Promise<string | undefined> {
    const cost = this.call(d).value + DEPOSIT_GAS_LIMIT * fees.maxFeePerGas;
    const balance = await this.balance();
    if (balance < cost) {
      throw Object.assign(
        new Error(
          `insufficient funds: the funder holds ${balance} wei, the deposit may cost ${cost}`,
        ),
        {
          code: 'INSUFFICIENT_FUNDS',
        },
      );
    }
    try {
      await this.provider.call({ ...this.call(d), from: this.wallet.address });
      return undefined;
    } catch (err) {
      const kind = classifyError(err);
      if (kind === 'unreachable' || kind === 'funds') throw err;
      const reason =
        (err as { reason?: string; shortMessage?: string }).reason ??
        (err as { shortMessage?: string }).shortMessage;
      return reason ?? 'reverted';
    }
  }

  async fees(): Promise<Fees> {
    const f = await this.provider.getFeeData();
    const priority = f.maxPriorityFeePerGas ?? 1_000_000_000n;
    return { maxFeePerGas: f.maxFeePerGas ?? priority * 2n, maxPriorityFeePerGas: priority };
  }

  /** Signs the deposit transaction with the funder's key; nothing is sent. */
  async sign(d: DepositRecord, nonce: number, fees: Fees): Promise<{ hash: string; raw: string }> {
    const raw = await this.wallet.signTransaction({
      ...this.call(d),
      type: 2,
      chainId: this.config.chainId,
      nonce,
      gasLimit: DEPOSIT_GAS_LIMIT,
      ...fees,
    });
    return { hash: keccak256(raw), raw };
  }

  async broadcast(raw: string): Promise<void> {
    await this.provider.broadcastTransaction(raw);
  }

  /** The receipt's status once it has --confirmations blocks, else undefined. */
  async settled(hash: string): Promise<0 | 1 | undefined> {
    const receipt = await this.provider.getTransactionReceipt(hash);
    if (!receipt) return undefined;
    const depth = (await this.provider.getBlockNumber()) - receipt.blockNumber + 1;
    if (depth < this.config.confirmations) return undefined;
    return receipt.status === 1 ? 1 : 0;
  }

  /** Whether the node knows the transaction at all (pending or mined). */
  async known(hash: string): Promise<boolean> {
    return (await this.provider.getTransaction(hash)) !== null;
  }

  async pendingNonce(): Promise<number> {
    return this.provider.getTransactionCount(this.wallet.address, 'pending');
  }

  async balance(): Promise<bigint> {
    return this.provider.getBalance(this.wallet.address);
  }

  close(): void {
    this.provider.destroy();
  }
}
