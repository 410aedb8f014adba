// Found by an adversarial review of the group commit's pipeline (issue 17, point 4): a KEK
// rotation's last step lists the secrets still sealed under the old data key by scanning the
// store. Run on top of a batch still being written, it missed the keys of that batch: a key
// made while the rotation's first batch was being written (sealed under the old data key, as
// sealing moves over only once that batch is written) reached the disk after the rotation had
// dropped the old data key, and could never be opened again. The last step now runs only once
// every earlier batch is written.
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

describe('KEK rotation beside the pipeline', () => {
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
    // must not scan the store before it is written. Before the fix it did, at once.
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
