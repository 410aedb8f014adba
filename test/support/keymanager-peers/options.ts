// The fakes' options, as zod schemas: a child process reads the same options from JSON that a
// test passes in-process, so both run the same fake.
import { z } from 'zod';

const EmptyProtection = z
  .enum(['no-entries', 'empty-history'])
  .describe('Prysm #17408: DELETE answers empty slashing protection (no entries, or empty ones)');

const Common = {
  /** The peer's name in the witness ledger. */
  name: z.string().min(1),
  /** The witness ledger (witness.ts), shared by every fake of a test. */
  witnessFile: z.string().min(1),
  /** Keystores, remote keys, settings and slashing history live here (state-file.ts). */
  dataDir: z.string().min(1),
  port: z.number().int().min(0).max(65535).optional(),
  genesisValidatorsRoot: z
    .string()
    .regex(/^0x[0-9a-fA-F]{64}$/)
    .optional(),
  /** A pause after each key's change, to widen the windows a kill -9 can hit. */
  stepDelayMs: z.number().int().nonnegative().optional(),
  emptyDeleteProtection: EmptyProtection.optional(),
};

export const FakeVcOptions = z.object({
  ...Common,
  /** Default `<dataDir>/api-token.txt`; made with a fresh 256-bit token if missing. */
  tokenFile: z.string().optional(),
  /** Unix seconds of slot 0 (default: the fixture's GENESIS). */
  genesisTime: z.number().int().nonnegative().optional(),
  /** Milliseconds per slot (default 12000). */
  slotMs: z.number().int().positive().optional(),
  /** Attest on a timer at the clock's epoch; off unless given. */
  attestEveryMs: z.number().int().positive().optional(),
  /** The signer of a remote key imported without a url (a client's --web3signer-url). */
  defaultSignerUrl: z.string().optional(),
  defaults: z
    .object({ feeRecipient: z.string(), graffiti: z.string(), gasLimit: z.string() })
    .partial()
    .optional(),
});
export type FakeVcOptions = z.input<typeof FakeVcOptions>;

export const FakeSignerOptions = z.object({
  ...Common,
  /** Turns bearer auth on for the key manager routes (Web3Signer itself has none). */
  tokenFile: z.string().optional(),
});
export type FakeSignerOptions = z.input<typeof FakeSignerOptions>;
