// --mnemonic-start-index N: the operator used the mnemonic's indexes below N elsewhere (deposited
// them with another tool, ran them in another cluster), so this store must never derive them.
// The store's next derivation index is raised to N, never lowered: a store already at or past N
// keeps its own (its indexes from there on were handed out here), and a later start with a
// smaller N changes nothing. The raise is one synced batch with its audit event, committed
// through the store's one writer before the server hands anything out.
//
// Keys below N are not searched for when a pod reports them (lookahead.ts searches from the next
// index on): the store never had them, so like any key it has no record of they are recorded as
// reported (with a proof of possession) or refused, and never handed out either way.
import type { GroupCommitter } from './group-commit.js';

export interface StartIndexRaise {
  readonly from: number;
  readonly to: number;
}

/** Raises the next derivation index to `start`; undefined when it was there already. */
export function applyStartIndex(
  group: GroupCommitter,
  now: number,
  start: number,
): Promise<StartIndexRaise | undefined> {
  return group.run(async (tx) => {
    const from = tx.nextKeyIndex();
    if (from >= start) return undefined;
    tx.stage({
      keys: [],
      pods: [],
      nextKeyIndex: start,
      events: [
        {
          at: now,
          type: 'skip',
          pubkeys: [],
          detail: `derivation indexes ${from}..${start - 1} were used elsewhere (--mnemonic-start-index ${start}): the next index is now ${start}`,
        },
      ],
    });
    return { from, to: start };
  });
}
