// Send mode at start-up: read the funder key, connect (checking the chain id), start the
// depositor (it first finishes what a previous run left open).

import { Depositor } from '../allocation/depositor.js';
import type { GroupCommitter } from '../allocation/group-commit.js';
import type { Clock } from '../clock.js';
import { DepositChain } from '../deposit/chain.js';
import type { DepositSettings, SendConfig } from '../deposit/config.js';
import { makeDeposit } from '../deposit/deposit-data.js';
import { readSecretFile } from '../files.js';
import type { KeySource } from '../keys/source.js';
import type { Logger } from '../log.js';
import type { StoreContract } from '../store/contract.js';

export interface DepositorParts {
  readonly store: StoreContract;
  readonly group: GroupCommitter;
  readonly keySource: KeySource;
  readonly clock: Clock;
  readonly log: Logger;
}

export async function openDepositor(
  settings: DepositSettings & { readonly send: SendConfig },
  parts: DepositorParts,
  reconcileMs?: number,
): Promise<Depositor> {
  const funderKey = (await readSecretFile(settings.send.funderKeyFile, 'funder-key-file')).trim();
  const chain = await DepositChain.connect({
    rpcUrl: settings.send.ethRpc,
    funderKey,
    contract: settings.network.depositContract,
    chainId: settings.network.chainId,
    confirmations: settings.send.confirmations,
  });
  const depositor = new Depositor({
    ...parts,
    chain,
    makeDeposit: (key) => makeDeposit(key, settings),
    config: { ...settings.send, amountGwei: settings.amountGwei },
  });
  try {
    await depositor.start(reconcileMs);
  } catch (err) {
    depositor.stop();
    throw err;
  }
  parts.log.info(
    { funder: chain.funder, contract: settings.network.depositContract },
    'deposits will be sent',
  );
  return depositor;
}
