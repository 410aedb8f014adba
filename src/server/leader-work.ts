// Work that runs only on the leader (DESIGN.md, "Store"): begun when this server becomes the
// leader, stopped the moment it is not. With one server (LevelDB) it begins at the start, and a
// failure then fails the start, as before there were leaders.
import { messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Leadership } from '../store/contract.js';

/** Begins the work; resolves with how to stop it. */
export type Work = () => Promise<() => Promise<void>>;

/** A leader whose work failed to begin tries again this often while it leads. */
const RETRY_MS = 5_000;

/**
 * Runs `begin` while `leadership` is held (at once, awaited, when it is held now). Resolves with
 * the teardown step that stops watching and stops the work.
 */
export async function whileLeader(
  leadership: Leadership,
  what: string,
  log: Logger,
  begin: Work,
): Promise<() => Promise<void>> {
  let stopWork: (() => Promise<void>) | undefined;
  let closed = false;
  // Beginnings and stops run one after another, in the order the leadership changed.
  let turns = Promise.resolve();
  if (leadership.isLeader) stopWork = await begin();
  let retry: NodeJS.Timeout | undefined;
  const follow = (leader: boolean) => {
    turns = turns.then(async () => {
      if (closed) return;
      if (leader && !stopWork && leadership.isLeader) {
        try {
          stopWork = await begin();
          log.info({ what }, 'leader: started');
        } catch (err) {
          log.warn({ what, err: messageOf(err) }, 'leader: could not start; trying again');
          retry = setTimeout(() => follow(true), RETRY_MS);
          retry.unref();
        }
      } else if (!leader && stopWork) {
        const stop = stopWork;
        stopWork = undefined;
        await stop().catch((err: unknown) =>
          log.warn({ what, err: messageOf(err) }, 'stop failed'),
        );
        log.info({ what }, 'not the leader: stopped');
      }
    });
  };
  const unwatch = leadership.watch(follow);
  return async () => {
    closed = true;
    if (retry) clearTimeout(retry);
    unwatch();
    await turns;
    const stop = stopWork;
    stopWork = undefined;
    await stop?.();
  };
}
