// A KEK rotation beside allocations whose writes are slow (held by a gate in front of the real
// store: test/support/gated-store.ts). A key made while the rotation's first batch is being
// written is sealed under the old data key (sealing moves over once that batch is written); the
// rotation's last step, which scans the store, must find it and re-seal it before the old data
// key goes, or its secret could never be opened again. (An adversarial review found this broken
// by an experimental pipelined group commit, since dropped; the test stays as a guard.)
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/allocation/group-commit.js';
import { rotateKek } from '../../src/allocation/kek-rotation.js';
import type { KeyRecord } from '../../src/store/records.js';
import { Store } from '../../src/store/store.js';
import { tempDir } from '../helpers.js';
import { deferred, gated, turns } from '../support/gated-store.js';

const OLD = Buffer.alloc(32, 0x41);
const NEW = Buffer.alloc(32, 0x42);

describe('KEK rotation beside slow writes', () => {
  it('a key made while the rotation begins is re-sealed before the old data key goes', async () => {
    const dir = await tempDir();
    const real = await Store.open(dir, { kek: async () => OLD });
    // The rotation's first batch and the new key's batch are each held until let on.
    const gates = [deferred(), deferred()];
    const entered = [deferred(), deferred()];
    let commits = 0;
    let scans = 0;
    const lastScan = deferred();
    const store = gated(
      real,
      async () => {
        const n = commits++;
        entered[n]?.resolve();
        await gates[n]?.promise;
      },
      () => {
        if (++scans === 2) lastScan.resolve();
      },
    );
    const group = GroupCommitter.of(store);
    const rotation = rotateKek(store, group, NEW);
    await entered[0]?.promise;
    // Meanwhile a key is made: the old data key still seals.
    const secret = randomBytes(32);
    const pubkey = `0x${randomBytes(48).toString('hex')}`;
    const made = group.run(async (tx) => {
      const after: KeyRecord = {
        pubkey,
        secret: store.secrets.seal(secret, pubkey),
        state: 'free',
        since: 1,
        createdAt: 1,
        history: [{ at: 1, event: 'created' }],
      };
      tx.stage({ keys: [{ after }], pods: [] });
    });
    await turns();
    gates[0]?.resolve();
    // The new key's batch is being written (held, as a slow sync): the rotation's last step
    // must not scan the store before it is written.
    await entered[1]?.promise;
    await Promise.race([lastScan.promise, new Promise((r) => setTimeout(r, 300))]);
    gates[1]?.resolve();
    await made;
    await rotation;
    await real.close();

    const reopened = await Store.open(dir, { kek: async () => NEW });
    try {
      const record = await reopened.getKey(pubkey);
      if (!record?.secret) throw new Error('the new key was not stored with its secret');
      expect(Buffer.from(reopened.secrets.open(record.secret, pubkey))).toEqual(secret);
    } finally {
      await reopened.close();
    }
  });
});
