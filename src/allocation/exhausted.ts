// The refusal of an allocation the pool cannot fill under --new-keys never. It is thrown before
// anything is staged, so the request changes nothing: all or nothing, never a partial allocation.
import { PkmError } from '../errors.js';

/** When nothing cools, only an import helps: a client asks again at this pace (seconds). */
const NOTHING_COOLING_RETRY_S = 60;

export interface Shortfall {
  readonly pod: string;
  /** What the pod asked for, and what it holds already. */
  readonly count: number;
  readonly held: number;
  /** Keys it could get now: its own cooling keys back, and free or cooled ones. */
  readonly available: number;
  /** The stored counts of free and cooling keys, for the operator. */
  readonly free: number;
  readonly cooling: number;
  /** How long until the oldest cooling key's reuse delay has passed, if any key cools. */
  readonly coolingWaitMs: number | undefined;
}

export function newKeysNever(s: Shortfall): PkmError {
  const need = s.count - s.held;
  return new PkmError(
    'POOL_EXHAUSTED',
    `pod ${s.pod} asked for ${s.count} keys (holds ${s.held}): the pool can give it ${s.available} of the ${need} it needs now (the pool has ${s.free} free keys, ${s.cooling} cooling), and with --new-keys never no key is generated. Add keys: import keystores with pkm keys import or POST /eth/v1/keystores`,
    {
      retryAfter:
        s.coolingWaitMs === undefined
          ? NOTHING_COOLING_RETRY_S
          : Math.max(1, Math.ceil(s.coolingWaitMs / 1000)),
    },
  );
}
