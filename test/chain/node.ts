// A real local EVM for the tests: `hardhat node` (hardhat@2, EDR) on 127.0.0.1, one per test
// file, stopped after it. Accounts are hardhat's well-known development accounts.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { ContractFactory, JsonRpcProvider, Wallet } from 'ethers';
import { compileContracts } from './compile.js';

/** hardhat's default accounts 0 and 1 (public test keys, never to hold real funds). */
export const DEPLOYER_KEY = '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80';
export const FUNDER_KEY = '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d';

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const address = s.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface Chain {
  readonly url: string;
  readonly provider: JsonRpcProvider;
  readonly proc: ChildProcess;
  stop(): Promise<void>;
}

export async function startChain(): Promise<Chain> {
  const port = await freePort();
  const cli = createRequire(import.meta.url).resolve('hardhat/internal/cli/cli.js');
  const proc = spawn(
    process.execPath,
    [cli, 'node', '--hostname', '127.0.0.1', '--port', String(port)],
    {
      cwd: new URL('.', import.meta.url).pathname,
      env: { PATH: process.env.PATH ?? '', HARDHAT_DISABLE_TELEMETRY_PROMPT: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  proc.stdout?.resume();
  proc.stderr?.resume();
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline || proc.exitCode !== null)
      throw new Error('hardhat node did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  const provider = new JsonRpcProvider(url, undefined, {
    staticNetwork: true,
    polling: true,
    pollingInterval: 100,
    cacheTimeout: -1,
  });
  return {
    url,
    provider,
    proc,
    async stop() {
      provider.destroy();
      if (proc.exitCode === null) {
        proc.kill('SIGKILL');
        await once(proc, 'exit');
      }
    },
  };
}

/** Deploys a compiled test contract from the deployer account; returns its address. */
export async function deploy(
  chain: Chain,
  name: 'TestDepositContract' | 'ClosedDepositContract',
): Promise<string> {
  const compiled = compileContracts()[name];
  if (!compiled) throw new Error(`no contract ${name}`);
  const deployer = new Wallet(DEPLOYER_KEY, chain.provider);
  const contract = await new ContractFactory(
    compiled.abi as never[],
    compiled.bytecode,
    deployer,
  ).deploy();
  await contract.waitForDeployment();
  return contract.getAddress();
}

/** Calls a JSON-RPC method directly (evm_mine, evm_setAutomine, ...). */
export async function rpc(chain: Chain, method: string, params: unknown[] = []): Promise<unknown> {
  return chain.provider.send(method, params);
}
