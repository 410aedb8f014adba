// Compiles the test contracts with solc-js, offline (hardhat's compiler download is not used).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

interface SolcOutput {
  errors?: Array<{ severity: string; formattedMessage: string }>;
  contracts: Record<
    string,
    Record<string, { abi: unknown[]; evm: { bytecode: { object: string } } }>
  >;
}

export interface Compiled {
  readonly abi: unknown[];
  readonly bytecode: string;
}

let cache: Record<string, Compiled> | undefined;

export function compileContracts(): Record<string, Compiled> {
  if (cache) return cache;
  const solc = createRequire(import.meta.url)('solc') as { compile(input: string): string };
  const source = readFileSync(new URL('./DepositContract.sol', import.meta.url), 'utf8');
  const input = {
    language: 'Solidity',
    sources: { 'DepositContract.sol': { content: source } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as SolcOutput;
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error');
  if (errors.length > 0) throw new Error(errors.map((e) => e.formattedMessage).join('\n'));
  const contracts = output.contracts['DepositContract.sol'] ?? {};
  cache = Object.fromEntries(
    Object.entries(contracts).map(([name, c]) => [
      name,
      { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` },
    ]),
  );
  return cache;
}
