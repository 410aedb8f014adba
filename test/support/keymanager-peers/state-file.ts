// What a fake keeps in its data dir, as a validator client keeps its keystores, passwords,
// remote-signer definitions, per-key settings and slashing database on disk: one JSON file,
// 0600, written to a temp name and renamed (src/files.ts), so kill -9 leaves the old state or
// the new one, never half of one. A restart with the same data dir loads it back.
import { join } from 'node:path';
import { z } from 'zod';
import { readIfExists, writePrivateFile } from '../../../src/files.js';
import type { SlashingRecords } from './slashing-db.js';

const Uint = z.string().regex(/^\d+$/);
const Root = z.string().optional();

export const SavedState = z.object({
  local: z.array(z.object({ pubkey: z.string(), keystore: z.string(), password: z.string() })),
  remote: z.array(z.object({ pubkey: z.string(), url: z.string() })),
  settings: z.record(
    z.string(),
    z.object({
      feeRecipient: z.string().optional(),
      graffiti: z.string().optional(),
      gasLimit: z.string().optional(),
    }),
  ),
  slashing: z.record(
    z.string(),
    z.object({
      signed_blocks: z.array(z.object({ slot: Uint, signing_root: Root })),
      signed_attestations: z.array(
        z.object({ source_epoch: Uint, target_epoch: Uint, signing_root: Root }),
      ),
    }),
  ),
});
export type SavedState = z.infer<typeof SavedState>;

const FILE = 'fake-peer-state.json';

export async function loadState(dataDir: string): Promise<SavedState> {
  const text = await readIfExists(join(dataDir, FILE));
  if (text === undefined) return { local: [], remote: [], settings: {}, slashing: {} };
  return SavedState.parse(JSON.parse(text));
}

export async function saveState(dataDir: string, state: SavedState): Promise<void> {
  await writePrivateFile(join(dataDir, FILE), JSON.stringify(state));
}

/** The slashing records as SlashingDb takes them (optional roots dropped when absent). */
export function slashingOf(state: SavedState): SlashingRecords {
  const clean = <T extends { signing_root?: string | undefined }>(x: T) => {
    const { signing_root, ...rest } = x;
    return signing_root === undefined ? rest : { ...rest, signing_root };
  };
  return Object.fromEntries(
    Object.entries(state.slashing).map(([k, h]) => [
      k,
      {
        signed_blocks: h.signed_blocks.map(clean),
        signed_attestations: h.signed_attestations.map(clean),
      },
    ]),
  );
}
