// GET /v1/deposits: one entry of the launchpad's deposit_data.json (DESIGN.md "Deposits"):
// hex without 0x, the amount in gwei.
import { z } from 'zod';

const hex = z.string();

export const DepositEntry = z.object({
  pubkey: hex,
  withdrawal_credentials: hex,
  amount: z.number().int(),
  signature: hex,
  deposit_message_root: hex,
  deposit_data_root: hex,
  fork_version: hex,
  network_name: z.string(),
  deposit_cli_version: z.string(),
});
