// The store conformance suite on the LevelDB store, each test on a new temp dir.
import { Level } from 'level';
import { Bucket, MetaKey } from '../../src/store/buckets.js';
import { openTempStore, tempDir } from '../helpers.js';
import { storeConformance } from './conformance.js';
import type { TestStore } from './conformance-support.js';

async function openLevel(dir: string): Promise<TestStore> {
  const store = await openTempStore(dir);
  return Object.assign(store, {
    async reopen(): Promise<TestStore> {
      await store.close();
      return openLevel(dir);
    },
    async reopenAtSchema(version: number): Promise<TestStore> {
      await store.close();
      const db = new Level<string, string>(dir);
      await db
        .sublevel<string, string>(Bucket.meta, {})
        .put(MetaKey.schemaVersion, String(version));
      await db.close();
      return openLevel(dir);
    },
  });
}

storeConformance('LevelDB', async () => openLevel(await tempDir()));
