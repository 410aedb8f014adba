// Which derivation index a reported public key came from. A store restored from an older copy
// (or one that lost writes) no longer knows the keys it derived last, but the pods that run
// them still report them. Searching a window of indexes past the stored next index finds them,
// so the next index moves past them at once and no other pod is ever handed the same index
// (DESIGN.md "Safety rules"). Derivation costs milliseconds per key: the window is derived
// once, lazily, and kept.
import { setImmediate as nextTick } from 'node:timers/promises';
import type { KeySource } from '../keys/source.js';

/** The default window of indexes searched past the next index. */
export const DEFAULT_LOOKAHEAD = 10_000;

export class DerivationLookahead {
  private readonly indexOf = new Map<string, number>();
  /** Indexes [0, derivedTo) are in the map. */
  private derivedTo = 0;

  constructor(
    private readonly source: KeySource,
    private readonly window = DEFAULT_LOOKAHEAD,
  ) {}

  get enabled(): boolean {
    return this.source.indexed && this.source.pubkeyAt !== undefined && this.window > 0;
  }

  /** One search at a time: each sees every index the ones before it derived. */
  private last: Promise<unknown> = Promise.resolve();

  /** The index each of `pubkeys` derives at, for those found below `from + window`. */
  find(pubkeys: readonly string[], from: number): Promise<Map<string, number>> {
    const run = this.last.then(() => this.search(pubkeys, from));
    this.last = run.catch(() => undefined);
    return run;
  }

  private async search(pubkeys: readonly string[], from: number): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    const pubkeyAt = this.source.pubkeyAt;
    if (!this.enabled || pubkeyAt === undefined) return found;
    const wanted = new Set(pubkeys);
    const look = () => {
      for (const pk of wanted) {
        const i = this.indexOf.get(pk);
        if (i !== undefined) {
          found.set(pk, i);
          wanted.delete(pk);
        }
      }
    };
    look();
    const end = from + this.window;
    // Below `from` the store knows every key it derived; only the window ahead is searched,
    // but indexes under it that were derived earlier stay in the map.
    this.derivedTo = Math.max(this.derivedTo, from);
    while (wanted.size > 0 && this.derivedTo < end) {
      const i = this.derivedTo++;
      const pk = pubkeyAt(i);
      this.indexOf.set(pk, i);
      if (wanted.delete(pk)) found.set(pk, i);
      if (i % 16 === 0) await nextTick(); // let requests in between keys
    }
    return found;
  }
}
