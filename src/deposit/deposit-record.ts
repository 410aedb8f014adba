// The deposit data the store keeps with a key, and its deposit_data.json form: apart from the
// code that makes it (deposit-data.ts), whose SSZ and signing a server without deposits never
// loads (issue 17, point 5).
import { z } from 'zod';

const Hex = (bytes: number) => z.string().regex(new RegExp(`^0x[0-9a-f]{${bytes * 2}}$`));

/** What the store keeps with a key: everything deposit_data.json and the contract call need. */
export const DepositRecord = z
  .object({
    pubkey: Hex(48),
    withdrawalCredentials: Hex(32),
    amount: z.number().int().positive(),
    signature: Hex(96),
    depositMessageRoot: Hex(32),
    depositDataRoot: Hex(32),
    forkVersion: Hex(4),
    networkName: z.string().min(1),
  })
  .strict();
export type DepositRecord = z.infer<typeof DepositRecord>;

/** The staking launchpad checks this version; 2.7.0 is one it accepts. */
export const DEPOSIT_CLI_VERSION = '2.7.0';

/** One entry of deposit_data.json: the launchpad's field names, hex without 0x, amount in gwei. */
export function launchpadEntry(d: DepositRecord) {
  const plain = (hex: string) => hex.slice(2);
  return {
    pubkey: plain(d.pubkey),
    withdrawal_credentials: plain(d.withdrawalCredentials),
    amount: d.amount,
    signature: plain(d.signature),
    deposit_message_root: plain(d.depositMessageRoot),
    deposit_data_root: plain(d.depositDataRoot),
    fork_version: plain(d.forkVersion),
    network_name: d.networkName,
    deposit_cli_version: DEPOSIT_CLI_VERSION,
  };
}
