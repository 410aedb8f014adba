// makeRoom (src/bounded-map.ts): a full map drops its oldest entries, a share at once; a map
// below its bound keeps everything.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { makeRoom } from '../src/bounded-map.js';

describe('makeRoom', () => {
  it('leaves a map below its bound alone', () => {
    const map = new Map([
      ['a', 1],
      ['b', 2],
    ]);
    makeRoom(map, 3);
    expect([...map.keys()]).toEqual(['a', 'b']);
  });

  it('drops a sixteenth of a full map, oldest first, a re-inserted entry counting as new', () => {
    const map = new Map<number, number>();
    for (let i = 0; i < 64; i++) map.set(i, i);
    // Re-inserted (as the caches do on a write): now the newest.
    map.delete(0);
    map.set(0, 0);
    makeRoom(map, 64);
    expect(map.size).toBe(60);
    expect([...map.keys()].slice(0, 2)).toEqual([5, 6]);
    expect(map.has(0)).toBe(true);
  });

  it('drops at least one entry, and brings an overfull map under its bound', () => {
    const small = new Map([['a', 1]]);
    makeRoom(small, 1);
    expect(small.size).toBe(0);
    const over = new Map<number, number>();
    for (let i = 0; i < 10; i++) over.set(i, i);
    makeRoom(over, 4);
    expect([...over.keys()]).toEqual([7, 8, 9]);
  });

  it('keeps a map at most at its bound through any inserts, losing only the oldest', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 300 }),
        (capacity, inserts) => {
          const map = new Map<number, number>();
          for (const key of inserts) {
            map.delete(key);
            makeRoom(map, capacity);
            map.set(key, key);
            expect(map.size).toBeLessThanOrEqual(capacity);
          }
          // What is kept is the newest entries: those after the last one dropped.
          const order: number[] = [];
          for (const key of inserts) {
            const at = order.indexOf(key);
            if (at >= 0) order.splice(at, 1);
            order.push(key);
          }
          expect([...map.keys()]).toEqual(order.slice(order.length - map.size));
        },
      ),
      { numRuns: 200 },
    );
  });
});
