// `pkm db copy` (issue 15, point 6) on LevelDB alone: a copy equal to its source, and the
// refusals (bad flags, a target that is not empty) that change nothing. The PostgreSQL side is
// copy-pg.test.ts.
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { randomKeySource } from '../../src/keys/source.js';
import { createLogger } from '../../src/log.js';
import { parseServerConfig } from '../../src/server/config.js';
import { prepareStore } from '../../src/server/startup.js';
import { MetaKey } from '../../src/store/buckets.js';
import { checkStore } from '../../src/store/check.js';
import { copyStore, finishCopy } from '../../src/store/copy.js';
import { Store } from '../../src/store/store.js';
import { onCleanup, tempDir, testKek } from '../helpers.js';
import { fullSnapshot, kekFile, pkmDb, seedStore } from './copy-support.js';

async function opened(dir: string): Promise<Store> {
  const store = await Store.open(dir, { kek: testKek });
  onCleanup(() => store.close());
  return store;
}

describe('pkm db copy, LevelDB to LevelDB', () => {
  it('copies every record, meta value and event: equal snapshots, clean checks, same secrets', async () => {
    const from = join(await tempDir(), 'from');
    const to = join(await tempDir(), 'to');
    await seedStore(from);
    const summary = await pkmDb([
      'copy',
      '--from',
      from,
      '--to',
      to,
      '--kek-file',
      await kekFile(),
    ]);
    expect(summary).toMatchObject({ keys: 1207, pods: 2, events: 903, problems: [] });
    const [source, copy] = [await opened(from), await opened(to)];
    expect((await checkStore(copy)).problems).toEqual([]);
    expect(await fullSnapshot(copy)).toEqual(await fullSnapshot(source));
  });

  it('refuses bad flags before anything is opened', async () => {
    const from = join(await tempDir(), 'from');
    const to = join(await tempDir(), 'to');
    const kek = await kekFile();
    const cases: Array<[string[], RegExp]> = [
      [['--to', to, '--kek-file', kek], /--from is required/],
      [['--from', from, '--kek-file', kek], /--to is required/],
      [['--from', from, '--to', to], /--kek-file is required/],
      [['--from', from, '--to', from, '--kek-file', kek], /the same store/],
      [['--from', from, '--to', 'mysql://db/x', '--kek-file', kek], /--to .*postgres:\/\//],
      [
        ['--from', from, '--to', to, '--to-store-ssl-mode', 'require', '--kek-file', kek],
        /--to .*needs a PostgreSQL store/,
      ],
      [
        ['--from', from, '--to', 'postgres://pkm@db.example/x', '--kek-file', kek],
        /--to .*store-ssl-mode/,
      ],
      [['--from', from, '--to', to, '--kek-file', join(from, 'nope')], /cannot be read/],
    ];
    for (const [args, message] of cases)
      await expect(pkmDb(['copy', ...args])).rejects.toMatchObject({
        code: 'INVALID_CONFIG',
        message: expect.stringMatching(message),
      });
    // Neither side was opened: no folder was made.
    await expect(readdir(from)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(readdir(to)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a target folder that is not empty, changing nothing', async () => {
    const from = join(await tempDir(), 'from');
    const to = join(await tempDir(), 'to');
    await seedStore(from, 0);
    await mkdir(to);
    await writeFile(join(to, 'something'), 'x');
    await expect(
      pkmDb(['copy', '--from', from, '--to', to, '--kek-file', await kekFile()]),
    ).rejects.toMatchObject({ code: 'RESTORE_TARGET_NOT_EMPTY' });
    expect(await readdir(to)).toEqual(['something']);
  });
});

describe('a copy that did not finish', () => {
  it('is marked until it is complete and checked, and pkm server refuses to start on it', async () => {
    const from = join(await tempDir(), 'from');
    const to = join(await tempDir(), 'to');
    await seedStore(from);
    const source = await opened(from);
    const target = await opened(to);
    // The copy dies after its last record, before it was checked and finished.
    await copyStore(source, target);
    expect(await target.getMeta(MetaKey.copyUnfinished)).toBeDefined();
    const config = parseServerConfig({ dataDir: to });
    await expect(
      prepareStore(
        target,
        GroupCommitter.of(target),
        config,
        randomKeySource,
        createLogger('silent'),
      ),
    ).rejects.toMatchObject({
      code: 'STORE_CORRUPT',
      message: expect.stringContaining('never finished'),
    });
    await finishCopy(target);
    expect(await target.getMeta(MetaKey.copyUnfinished)).toBeUndefined();
  });
});
