// The in-memory window over a pool index, on a real LevelDB sublevel: a refill whose read raced
// a batch is dropped and read again, so the window ends exact; a read passes over skipped keys.
import { Level } from 'level';
import { describe, expect, it } from 'vitest';
import { IndexWindow, type KeyRange } from '../../src/store/index-window.js';
import { onCleanup, tempDir } from '../helpers.js';

async function sublevel() {
  const db = new Level<string, string>(await tempDir());
  await db.open();
  onCleanup(() => db.close());
  return db.sublevel<string, string>('cooling', {});
}

const key = (n: number) => `${String(n).padStart(4, '0')}!k${n}`;

/** The sublevel, its reads held after they read until `release` is called. */
function heldReads(sub: KeyRange) {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let reads = 0;
  const range: KeyRange = {
    keys: (r) => ({
      all: async () => {
        const got = await sub.keys(r).all();
        reads++;
        await gate;
        return got;
      },
    }),
  };
  return { range, release, reads: () => reads };
}

describe('IndexWindow', () => {
  it('a refill whose read raced a batch is read again: the window ends exact', async () => {
    const sub = await sublevel();
    await sub.batch([1, 2, 3, 4, 5, 6].map((n) => ({ type: 'put', key: key(n), value: '' })));
    const held = heldReads(sub);
    let commits = 0;
    const window = new IndexWindow(
      held.range,
      4,
      () => commits,
      async () => undefined,
    );
    const read = window.read(2);
    while (held.reads() === 0) await new Promise((r) => setImmediate(r));
    // The read saw 1..4; a batch now takes 1 and 2 and releases 0 (an older time).
    // The store bumps its commit count on both sides of a write, as Store.commit() does.
    commits++;
    await sub.batch([
      { type: 'del', key: key(1) },
      { type: 'del', key: key(2) },
      { type: 'put', key: key(0), value: '' },
    ]);
    commits++;
    window.apply([key(1), key(2)], [key(0)]);
    held.release();
    expect(await read).toEqual([key(0), key(3)]);
    expect(await window.read(10)).toEqual([0, 3, 4, 5, 6].map(key));
  });

  it('passes over the keys it is told to skip, and reads on for them', async () => {
    const sub = await sublevel();
    await sub.batch([1, 2, 3, 4, 5, 6, 7].map((n) => ({ type: 'put', key: key(n), value: '' })));
    const window = new IndexWindow(
      sub,
      2,
      () => 0,
      async () => undefined,
    );
    const staged = new Set(['k1', 'k2', 'k4']);
    expect(await window.read(3, undefined, (k) => staged.has(k))).toEqual([3, 5, 6].map(key));
    expect(await window.read(2, key(4), (k) => staged.has(k))).toEqual([key(3)]);
  });
});
