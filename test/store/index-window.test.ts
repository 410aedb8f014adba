// The in-memory window over a pool index, on a real LevelDB sublevel: a refill whose read raced
// a batch is dropped and read again, so the window ends exact; a read passes over skipped keys.
import fc from 'fast-check';
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
    expect(await window.read(3, undefined, staged)).toEqual([3, 5, 6].map(key));
    expect(await window.read(2, key(4), staged)).toEqual([key(3)]);
  });

  it('starts a read past the keys it passed over only while that still holds', async () => {
    const sub = await sublevel();
    await sub.batch([0, 1, 2, 3, 4, 5].map((n) => ({ type: 'put', key: key(n), value: '' })));
    const window = new IndexWindow(
      sub,
      8,
      () => 0,
      async () => undefined,
    );
    const staged = new CountedSet(['k0', 'k1']);
    expect(await window.read(2, undefined, staged)).toEqual([key(2), key(3)]);
    // Grown: the next request's read passes over one more.
    staged.add('k2');
    expect(await window.read(2, undefined, staged)).toEqual([key(3), key(4)]);
    // One left it (an operation undone): it is in the answer again.
    staged.delete('k0');
    expect(await window.read(2, undefined, staged)).toEqual([key(0), key(3)]);
    // Another pass-over (the next group) passes over nothing the last one did.
    const group = new CountedSet(['k0', 'k1']);
    expect(await window.read(1, undefined, group)).toEqual([key(2)]);
    const next = new CountedSet(['k3']);
    expect(await window.read(3, undefined, next)).toEqual([key(0), key(1), key(2)]);
    // A key passed over after one in the answer: the next reads still give that one.
    next.add('k1');
    expect(await window.read(2, undefined, next)).toEqual([key(0), key(2)]);
    expect(await window.read(2, undefined, next)).toEqual([key(0), key(2)]);
    // The window changed under the pass-over (a batch took the oldest key): exact again.
    expect(await window.read(1, undefined, group)).toEqual([key(2)]);
    await sub.batch([{ type: 'del', key: key(0) }]);
    window.apply([key(0)], []);
    expect(await window.read(1, undefined, group)).toEqual([key(2)]);
  });

  it('a pass-over that grows, loses keys, and meets a changed window: every read is exact', async () => {
    // Reads in turn with a pass-over that counts its removals (as a group's staged keys do):
    // the window starts a read past the keys it passed over before. Each read is checked
    // against the live keys, sorted and filtered, whatever happened in between.
    const step = fc.oneof(
      fc.record({ op: fc.constant('stage' as const), n: fc.nat({ max: 39 }) }),
      // As a group's request does: the oldest key not staged yet.
      fc.record({ op: fc.constant('stageOldest' as const) }),
      fc.record({ op: fc.constant('unstage' as const), n: fc.nat({ max: 39 }) }),
      fc.record({ op: fc.constant('newGroup' as const) }),
      fc.record({ op: fc.constant('take' as const), n: fc.nat({ max: 39 }) }),
      fc.record({ op: fc.constant('insert' as const), n: fc.nat({ max: 39 }) }),
      fc.record({
        op: fc.constant('read' as const),
        limit: fc.integer({ min: 1, max: 8 }),
        lte: fc.option(fc.nat({ max: 39 }), { nil: undefined }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 60 }), async (steps) => {
        const sub = await sublevel();
        const live = new Set(Array.from({ length: 30 }, (_, n) => n));
        await sub.batch([...live].map((n) => ({ type: 'put', key: key(n), value: '' })));
        const window = new IndexWindow(
          sub,
          8,
          () => 0,
          async () => undefined,
        );
        let staged = new CountedSet();
        for (const s of steps) {
          if (s.op === 'stage') staged.add(`k${s.n}`);
          else if (s.op === 'stageOldest') {
            const oldest = [...live].sort((a, b) => a - b).find((n) => !staged.has(`k${n}`));
            if (oldest !== undefined) staged.add(`k${oldest}`);
          } else if (s.op === 'unstage') {
            // One of the staged keys (an operation undone).
            const all = [...staged];
            staged.delete(all[s.n % Math.max(1, all.length)] ?? '');
          } else if (s.op === 'newGroup') staged = new CountedSet();
          else if (s.op === 'take' || s.op === 'insert') {
            // A committed batch: the LevelDB write, then the window told (as Store.commit does).
            const taking = s.op === 'take';
            if (taking === live.has(s.n)) {
              if (taking) live.delete(s.n);
              else live.add(s.n);
              await sub.batch([
                taking ? { type: 'del', key: key(s.n) } : { type: 'put', key: key(s.n), value: '' },
              ]);
              window.apply(taking ? [key(s.n)] : [], taking ? [] : [key(s.n)]);
            }
          } else {
            const bound = s.lte === undefined ? undefined : key(s.lte);
            const expected = [...live]
              .sort((a, b) => a - b)
              .map(key)
              .filter(
                (k) => (bound === undefined || k <= bound) && !staged.has(k.split('!')[1] ?? ''),
              )
              .slice(0, s.limit);
            expect(await window.read(s.limit, bound, staged)).toEqual(expected);
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});

/** A set that counts what leaves it: a pass-over as a transaction's staged keys are one. */
class CountedSet extends Set<string> {
  removals = 0;

  override delete(value: string): boolean {
    const had = super.delete(value);
    if (had) this.removals++;
    return had;
  }
}
