// `pkm rebalance --selector …` (issue 16, point 3): which pods, and which moves even their keys
// out. Pure: the store is read and written by moves.ts.
//
// The selector is a comma-separated list of pod patterns, matched against the pods' identities
// in the store (`name` in the default namespace, `namespace/name` elsewhere): `*` stands for
// any run of characters, nothing else is special. A pattern with `*` selects the pods the
// server knows that hold keys; a plain name selects that pod even if it holds none yet (a new
// pod to spread keys to). So `validator-*` evens out every validator pod, and
// `validator-*,validator-9` brings a new, empty one in.
import { PkmError } from '../errors.js';

export interface Selector {
  readonly patterns: readonly RegExp[];
  /** Plain names: selected whether the store knows them or not. */
  readonly names: readonly string[];
}

const PATTERN = /^[a-z0-9*]([-a-z0-9.*/]*[a-z0-9*])?$/;

export function parseSelector(text: string): Selector {
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  if (
    parts.length === 0 ||
    parts.length > 64 ||
    parts.some((p) => !PATTERN.test(p) || p.length > 320 || p.split('/').length > 2)
  )
    throw new PkmError(
      'INVALID_BODY',
      'selector: comma-separated pod names or patterns (lowercase a-z, 0-9, "-", ".", one "/" for namespace/name, "*" for any run of characters), e.g. "validator-*"',
    );
  const toRegExp = (p: string) => p.replace(/[.]/g, '\\.').replace(/\*/g, '.*');
  return {
    patterns: parts.filter((p) => p.includes('*')).map((p) => new RegExp(`^${toRegExp(p)}$`)),
    names: parts.filter((p) => !p.includes('*')),
  };
}

export function selects(selector: Selector, identity: string): boolean {
  return selector.names.includes(identity) || selector.patterns.some((p) => p.test(identity));
}

export interface PlannedMove {
  readonly from: string;
  readonly to: string;
  readonly count: number;
}

/**
 * Moves that leave every pod with floor(T/n) or ceil(T/n) of the T keys, each key moved at most
 * once and as few as possible: the pods that hold most keep the extra ones. `counts` is what
 * each pod will hold once the moves already under way arrive. Deterministic (ties by name).
 */
export function planRebalance(counts: ReadonlyMap<string, number>): PlannedMove[] {
  const pods = [...counts].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0));
  const total = pods.reduce((sum, [, c]) => sum + c, 0);
  const n = pods.length;
  if (n === 0) return [];
  const base = Math.floor(total / n);
  const extra = total % n;
  const surplus: Array<{ pod: string; left: number }> = [];
  const deficit: Array<{ pod: string; left: number }> = [];
  pods.forEach(([pod, count], i) => {
    const target = base + (i < extra ? 1 : 0);
    if (count > target) surplus.push({ pod, left: count - target });
    if (count < target) deficit.push({ pod, left: target - count });
  });
  const moves: PlannedMove[] = [];
  let d = 0;
  for (const s of surplus) {
    while (s.left > 0) {
      const want = deficit[d];
      if (want === undefined) break;
      const count = Math.min(s.left, want.left);
      moves.push({ from: s.pod, to: want.pod, count });
      s.left -= count;
      want.left -= count;
      if (want.left === 0) d++;
    }
  }
  return moves;
}
