import {
  Contract,
  type ContractTransactionResponse,
  type Log,
  type LogDescription,
  parseEther,
  Wallet,
} from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEPOSIT_ABI } from '../../src/deposit/chain.js';
import { makeDeposit } from '../../src/deposit/deposit-data.js';
import { randomKey } from '../../src/keys/bls.js';
import { type Chain, DEPLOYER_KEY, deploy, startChain } from './node.js';

const ADDRESS = '0xf93ee4cf8c6c40b329b0c0626f28333c132cf241';
let chain: Chain;
let contract: Contract;

beforeAll(async () => {
  chain = await startChain();
  contract = new Contract(
    await deploy(chain, 'TestDepositContract'),
    DEPOSIT_ABI,
    new Wallet(DEPLOYER_KEY, chain.provider),
  );
}, 60_000);
afterAll(async () => chain?.stop());

function deposit(amountGwei = 32e9) {
  return makeDeposit(randomKey(), {
    network: {
      name: 'custom',
      forkVersion: '0x00000000',
      chainId: 31337n,
      depositContract: ADDRESS,
    },
    amountGwei,
    credentials: { type: 'execution', address: ADDRESS, compounding: false },
  });
}

async function send(
  d: ReturnType<typeof deposit>,
  overrides: { root?: string; pubkey?: string; value?: bigint } = {},
): Promise<ContractTransactionResponse> {
  const fn = contract.getFunction('deposit');
  return fn(
    overrides.pubkey ?? d.pubkey,
    d.withdrawalCredentials,
    d.signature,
    overrides.root ?? d.depositDataRoot,
    {
      value: overrides.value ?? BigInt(d.amount) * 10n ** 9n,
    },
  );
}

describe('the test deposit contract (solc-js, on a hardhat node)', () => {
  it('accepts our deposit and logs it', async () => {
    const d = deposit();
    const receipt = await (await send(d)).wait();
    const log = receipt?.logs
      .map((l: Log) => contract.interface.parseLog({ topics: [...l.topics], data: l.data }))
      .find((l: LogDescription | null) => l?.name === 'DepositEvent');
    expect(log?.args.pubkey).toBe(d.pubkey);
    expect(log?.args.withdrawal_credentials).toBe(d.withdrawalCredentials);
    expect(log?.args.amount).toBe('0x0040597307000000'); // 32e9 gwei, 8 bytes little-endian
  });

  it('refuses a tampered deposit_data_root, a short pubkey and an amount below 1 ETH', async () => {
    const d = deposit();
    // The last byte flipped (a fixed byte would equal the real one in 1 of 256 runs).
    const last = (Number.parseInt(d.depositDataRoot.slice(-2), 16) ^ 0xff).toString(16);
    const tampered = `${d.depositDataRoot.slice(0, -2)}${last.padStart(2, '0')}`;
    await expect(send(d, { root: tampered })).rejects.toThrow(/deposit_data_root does not match/);
    await expect(send(d, { pubkey: d.pubkey.slice(0, 96) })).rejects.toThrow(
      /pubkey must be 48 bytes/,
    );
    const small = deposit(5e8);
    await expect(send(small, { value: parseEther('0.5') })).rejects.toThrow(/below 1 ETH/);
  });
});
