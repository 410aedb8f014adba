// A LevelDB store in every state `pkm db copy` must carry (free, allocated, cooling confirmed
// and fenced, retired; pods; protection; derived paths; events; meta), and how copies compare.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import { vi } from 'vitest';
import { addDbCommands } from '../../src/cli-db.js';
import { MetaKey } from '../../src/store/buckets.js';
import type { StoreContract } from '../../src/store/contract.js';
import { COPIED_META } from '../../src/store/copy.js';
import type { KeyRecord } from '../../src/store/records.js';
import { Store } from '../../src/store/store.js';
import { tempDir, testKek } from '../helpers.js';
import { seedKeys } from '../support/seed.js';
import { coolingKey, freeKey, pod, pubkeyOf, snapshot } from './conformance-support.js';

export const GVR = `0x${'ab'.repeat(32)}`;

/** testKek's KEK in a file, as --kek-file takes it. */
export async function kekFile(): Promise<string> {
  const file = join(await tempDir(), 'kek');
  await writeFile(file, (await testKek()).toString('hex'), { mode: 0o600 });
  return file;
}

/** A stopped store in `dir` (closed on return); `extra` free keys make the copy chunk. */
export async function seedStore(dir: string, extra = 1200): Promise<void> {
  const store = await Store.open(dir, { kek: testKek });
  try {
    const derived = (n: number, index: number): KeyRecord => ({
      ...freeKey(store, n, 10 + n),
      path: `m/12381/3600/${index}/0/0`,
    });
    const keys: KeyRecord[] = [
      derived(1, 0),
      derived(2, 1),
      {
        ...derived(3, 2),
        state: 'allocated',
        pod: 'validator-0',
        protection: { lastBlockSlot: 100, lastSourceEpoch: 4, lastTargetEpoch: 5 },
      },
      { ...freeKey(store, 4, 14), state: 'allocated', pod: 'validator-0' },
      { ...coolingKey(store, 5, 15, 'validator-1'), stop: 'confirmed', uid: 'uid-1' },
      { ...freeKey(store, 6, 16), state: 'cooling', stop: 'fenced' },
      { ...freeKey(store, 7, 17), state: 'retired' },
    ];
    await store.commit({
      keys: keys.map((after) => ({ after })),
      pods: [
        { name: 'validator-0', after: pod([pubkeyOf(3), pubkeyOf(4)]) },
        { name: 'validator-1', after: pod([], [pubkeyOf(5)]) },
      ],
      nextKeyIndex: 5,
      events: [
        { at: 20, type: 'allocate', pod: 'validator-0', pubkeys: [pubkeyOf(3), pubkeyOf(4)] },
        { at: 21, type: 'release', pod: 'validator-1', pubkeys: [pubkeyOf(5)] },
        { at: 22, type: 'retire', pubkeys: [pubkeyOf(7)], detail: 'by hand' },
      ],
      meta: [
        [MetaKey.genesisValidatorsRoot, GVR],
        [MetaKey.restoredAt, '12345'],
      ],
    });
    await store.bindKeySource('fingerprint-1');
    await seedKeys(store, extra);
    for (let i = 0; i < 3; i++)
      await store.commit({
        keys: [],
        pods: [],
        events: Array.from({ length: 300 }, (_, j) => ({
          at: 100 + i * 300 + j,
          type: 'fence' as const,
          pubkeys: [pubkeyOf(6)],
        })),
      });
  } finally {
    await store.close();
  }
}

/** The whole state through the contract, with every copied meta value and opened secret. */
export async function fullSnapshot(store: StoreContract) {
  const secrets: Record<string, string> = {};
  for await (const r of store.keyRecords())
    if (r.secret)
      secrets[r.pubkey] = Buffer.from(store.secrets.open(r.secret, r.pubkey)).toString('hex');
  return {
    ...(await snapshot(store)),
    copiedMeta: await Promise.all(COPIED_META.map((k) => store.getMeta(k))),
    secrets,
  };
}

/**
 * `pkm db …` in this process: resolves to the JSON line it printed, or rejects with the
 * command's PkmError.
 */
export async function pkmDb(args: string[]): Promise<unknown> {
  const program = new Command().exitOverride();
  addDbCommands(program);
  const lines: string[] = [];
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    await program.parseAsync(['db', ...args], { from: 'user' });
  } finally {
    out.mockRestore();
  }
  const last = lines.at(-1);
  return last === undefined ? undefined : JSON.parse(last);
}
