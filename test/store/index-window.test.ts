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

  it('applies commits that delete and insert many keys at once, anywhere: every read is exact', async () => {
    // A commit's deletions are found at the front or by search, and the window is cut or
    // rebuilt once (apply). Random commits of many keys each, on indexes small enough for the
    // window to hold all of them (complete) and larger; a key may even be put again.
    const commitOf = fc.record({
      deleted: fc.array(fc.nat({ max: 15 }), { maxLength: 12 }),
      inserted: fc.array(fc.nat({ max: 99 }), { maxLength: 8 }),
      limit: fc.integer({ min: 1, max: 12 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 40 }),
        fc.array(commitOf, { maxLength: 30 }),
        async (size, commits) => {
          const sub = await sublevel();
          const live = new Set(Array.from({ length: size }, (_, i) => 2 * i));
          await sub.batch([...live].map((n) => ({ type: 'put', key: key(n), value: '' })));
          let count = 0;
          const window = new IndexWindow(
            sub,
            8,
            () => count,
            async () => undefined,
          );
          const sorted = () => [...live].sort((a, b) => a - b);
          await window.read(1);
          for (const c of commits) {
            // The n-th oldest live keys mostly: what allocations take, with a few gaps.
            const deleted = [...new Set(c.deleted.map((n) => sorted()[n]))].filter(
              (n): n is number => n !== undefined,
            );
            for (const n of deleted) live.delete(n);
            for (const n of c.inserted) live.add(n);
            count++;
            await sub.batch([
              ...deleted.map((n) => ({ type: 'del' as const, key: key(n) })),
              ...c.inserted.map((n) => ({ type: 'put' as const, key: key(n), value: '' })),
            ]);
            count++;
            window.apply(deleted.map(key), c.inserted.map(key));
            expect(await window.read(c.limit)).toEqual(sorted().slice(0, c.limit).map(key));
          }
          expect(await window.read(200)).toEqual(sorted().map(key));
        },
      ),
      { numRuns: 150 },
    );
  });
});

/**
 * The sublevel with its reads past an edge (a read ahead: `gt`) held until `release`: a test
 * commits in between, as the store's groups do while a read ahead is under way.
 */
function heldReadsAhead(sub: KeyRange) {
  const waiting: Array<() => void> = [];
  let holding = true;
  const ranges: Array<{ gt?: string; gte?: string; limit: number }> = [];
  /** Reads past an edge begun whose keys are not read yet. */
  let reading = 0;
  const range: KeyRange = {
    keys: (r) => ({
      all: async () => {
        ranges.push(r);
        if (r.gt === undefined) return sub.keys(r).all();
        reading++;
        const got = await sub
          .keys(r)
          .all()
          .finally(() => reading--);
        if (holding) await new Promise<void>((go) => waiting.push(go));
        return got;
      },
    }),
  };
  const release = (keepHolding: boolean) => {
    holding = keepHolding;
    for (const go of waiting.splice(0)) go();
  };
  const hold = () => {
    holding = true;
  };
  return { range, ranges, release, hold, held: () => waiting.length, reading: () => reading };
}

/** Waits until `done` holds (LevelDB's reads run on other threads), for 5 s at most. */
async function turnsUntil(done: () => boolean): Promise<void> {
  const until = Date.now() + 5000;
  while (!done() && Date.now() < until) await new Promise((r) => setTimeout(r, 1));
  expect(done()).toBe(true);
}

describe('IndexWindow reading ahead', () => {
  /** 2 * n, so that the odd numbers can be inserted between them. */
  const even = (count: number) => Array.from({ length: count }, (_, i) => 2 * i);

  it('reads past its edge once keys are gone, and merges the commits made meanwhile', async () => {
    const sub = await sublevel();
    await sub.batch(even(20).map((n) => ({ type: 'put', key: key(n), value: '' })));
    const held = heldReadsAhead(sub);
    const prefetched: string[][] = [];
    const window = new IndexWindow(
      held.range,
      8,
      () => 0,
      async (keys) => {
        prefetched.push([...keys]);
      },
    );
    const live = new Set(even(20));
    const commit = async (deleted: number[], inserted: number[]) => {
      for (const n of deleted) live.delete(n);
      for (const n of inserted) live.add(n);
      await sub.batch([
        ...deleted.map((n) => ({ type: 'del' as const, key: key(n) })),
        ...inserted.map((n) => ({ type: 'put' as const, key: key(n), value: '' })),
      ]);
      window.apply(deleted.map(key), inserted.map(key));
    };
    expect(await window.read(1)).toEqual([key(0)]); // the window: 0..14, its edge 14
    expect(held.ranges).toEqual([{ limit: 8 }]);
    await commit([0, 2, 4, 6, 8], []);
    // Three of eight left: a read of the eight keys past 14 began, and is held.
    await turnsUntil(() => held.held() === 1);
    expect(held.ranges.at(-1)).toEqual({ limit: 8, gt: key(14) });
    // Meanwhile: a key past the edge goes (retired, say), one is released into the range the
    // read covers, one far past it, and one below the edge.
    await commit([20], [21, 41, 13]);
    held.release(false);
    await turnsUntil(() => prefetched.length === 2);
    // The read found 16..30: it holds what the commits left of them, and 21; 41 is past its end.
    expect(prefetched[1]).toEqual([16, 18, 20, 22, 24, 26, 28, 30].map(key));
    const reads = held.ranges.length;
    const expected = [...live]
      .filter((n) => n <= 30)
      .sort((a, b) => a - b)
      .map(key);
    expect(await window.read(expected.length)).toEqual(expected);
    expect(held.ranges.length).toBe(reads); // answered from memory
    // All of it, 41 too, once the window reads on.
    expect(await window.read(40)).toEqual([...live].sort((a, b) => a - b).map(key));
  });

  it('a read that needs keys waits for the read ahead rather than reading again', async () => {
    const sub = await sublevel();
    await sub.batch(even(20).map((n) => ({ type: 'put', key: key(n), value: '' })));
    const held = heldReadsAhead(sub);
    const window = new IndexWindow(
      held.range,
      8,
      () => 0,
      async () => undefined,
    );
    expect(await window.read(1)).toEqual([key(0)]);
    const gone = [0, 2, 4, 6, 8];
    await sub.batch(gone.map((n) => ({ type: 'del' as const, key: key(n) })));
    window.apply(gone.map(key), []);
    await turnsUntil(() => held.held() === 1);
    const answer = window.read(5);
    await new Promise((r) => setImmediate(r));
    expect(held.ranges).toHaveLength(2); // the first load and the read ahead: nothing more
    held.release(false);
    expect(await answer).toEqual([10, 12, 14, 16, 18].map(key));
    expect(held.ranges).toHaveLength(2);
  });

  it('drops a read ahead whose window was cut meanwhile', async () => {
    const sub = await sublevel();
    const hundreds = Array.from({ length: 20 }, (_, i) => 100 * i);
    await sub.batch(hundreds.map((n) => ({ type: 'put', key: key(n), value: '' })));
    const held = heldReadsAhead(sub);
    const window = new IndexWindow(
      held.range,
      8,
      () => 0,
      async () => undefined,
    );
    expect(await window.read(1)).toEqual([key(0)]); // the window: 0..700
    const gone = [0, 100, 200, 300, 400];
    await sub.batch(gone.map((n) => ({ type: 'del' as const, key: key(n) })));
    window.apply(gone.map(key), []);
    await turnsUntil(() => held.held() === 1);
    // Forty keys below the edge: more than four windows, so apply cuts the window's tail
    // (its edge comes down) while the read past the old edge is under way.
    const many = Array.from({ length: 40 }, (_, i) => 501 + i);
    await sub.batch(many.map((n) => ({ type: 'put' as const, key: key(n), value: '' })));
    window.apply([], many.map(key));
    held.release(false);
    await turnsUntil(() => held.held() === 0);
    const live = [...hundreds.filter((n) => !gone.includes(n)), ...many].sort((a, b) => a - b);
    // More than the cut window holds: read again from the index, not merged past a gap.
    expect(await window.read(20)).toEqual(live.slice(0, 20).map(key));
    expect(await window.read(live.length)).toEqual(live.map(key));
  });

  it('stays exact whatever commits race its reads ahead', async () => {
    // Random commits (the oldest keys taken, keys inserted and deleted anywhere), with the
    // reads ahead held and let go at random points; every read is checked against the index.
    const step = fc.oneof(
      // Taken most often: the window runs low, and reads ahead.
      {
        arbitrary: fc.record({
          op: fc.constant('takeOldest' as const),
          n: fc.integer({ min: 1, max: 4 }),
          // Now, perhaps before a read ahead has read its keys: a commit it may already see.
          now: fc.boolean(),
        }),
        weight: 4,
      },
      // Just after the n-th oldest live key: near the front, where the window and its reads
      // ahead are.
      fc.record({ op: fc.constant('insert' as const), n: fc.nat({ max: 12 }) }),
      // The n-th oldest live key (retired, say).
      fc.record({ op: fc.constant('delete' as const), n: fc.nat({ max: 23 }) }),
      fc.record({ op: fc.constant('letGo' as const) }),
      fc.record({ op: fc.constant('read' as const), limit: fc.integer({ min: 1, max: 8 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), async (steps) => {
        const sub = await sublevel();
        const live = new Set(even(40));
        await sub.batch([...live].map((n) => ({ type: 'put', key: key(n), value: '' })));
        const held = heldReadsAhead(sub);
        let commits = 0;
        const window = new IndexWindow(
          held.range,
          8,
          () => commits,
          async () => undefined,
        );
        const sorted = () => [...live].sort((a, b) => a - b);
        const commit = async (deleted: number[], inserted: number[], now = false) => {
          // Unless `now`, a read ahead under way has read its keys first: this commit is one
          // it did not see, and merge must apply it. Now, the read may see it or not; either
          // way merge replays it, and that must change nothing the read already holds.
          if (!now) await turnsUntil(() => held.reading() === 0);
          for (const n of deleted) live.delete(n);
          for (const n of inserted) live.add(n);
          commits++;
          await sub.batch([
            ...deleted.map((n) => ({ type: 'del' as const, key: key(n) })),
            ...inserted.map((n) => ({ type: 'put' as const, key: key(n), value: '' })),
          ]);
          commits++;
          window.apply(deleted.map(key), inserted.map(key));
        };
        expect(await window.read(1)).toEqual(sorted().slice(0, 1).map(key));
        for (const s of steps) {
          if (s.op === 'takeOldest') await commit(sorted().slice(0, s.n), [], s.now);
          else if (s.op === 'insert') {
            const after = sorted()[s.n];
            if (after !== undefined && !live.has(after + 1)) await commit([], [after + 1]);
          } else if (s.op === 'delete') {
            const victim = sorted()[s.n];
            if (victim !== undefined) await commit([victim], []);
          } else if (s.op === 'letGo') held.release(true);
          else if (s.op === 'read') {
            held.release(false); // a read may wait for the read ahead, or read itself
            expect(await window.read(s.limit)).toEqual(sorted().slice(0, s.limit).map(key));
            held.hold();
          }
        }
        held.release(false);
        await turnsUntil(() => held.held() === 0);
        expect(await window.read(200)).toEqual(sorted().map(key));
      }),
      { numRuns: 120 },
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
