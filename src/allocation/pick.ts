import type { IndexEntry } from '../store/contract.js';

/** Merges two oldest-first lists and keeps the `n` oldest: "oldest freed first" across both. */
export function pickOldest(
  a: readonly IndexEntry[],
  b: readonly IndexEntry[],
  n: number,
): IndexEntry[] {
  const out: IndexEntry[] = [];
  let i = 0;
  let j = 0;
  while (out.length < n) {
    const x = a[i];
    const y = b[j];
    if (x !== undefined && (y === undefined || older(x, y))) {
      out.push(x);
      i++;
    } else if (y !== undefined) {
      out.push(y);
      j++;
    } else {
      break;
    }
  }
  return out;
}

function older(x: IndexEntry, y: IndexEntry): boolean {
  return x.since < y.since || (x.since === y.since && x.pubkey < y.pubkey);
}
