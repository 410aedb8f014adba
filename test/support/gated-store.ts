// A real store behind a gate: every commit passes `gate` first (which may hold it, as a slow
// sync would, or fail it unwritten, as a dead disk would), then the store writes it. Everything
// else goes straight to the store. Fault injection for the group commit: the store, its LevelDB
// and its sync stay real; the test only chooses when a batch gets written.
import type { Change, StoreContract } from '../../src/store/contract.js';

/** What the gate does with a batch: let it on now, hold it, or fail it unwritten. */
export type Gate = (change: Change) => Promise<void>;

export function gated<S extends StoreContract>(
  store: S,
  gate: Gate,
  scanned?: () => void,
): StoreContract {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'commit')
        return async (change: Change) => {
          await gate(change);
          await target.commit(change);
        };
      // `scanned` is told when a scan of every key record ends.
      if (prop === 'keyRecords' && scanned)
        return async function* () {
          yield* target.keyRecords();
          scanned();
        };
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A promise with its resolve and reject at hand. */
export function deferred<T = void>() {
  let resolve: (value: T) => void = () => undefined;
  let reject: (err: unknown) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets the event loop run a few turns (for what is queued to get going). */
export async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}
