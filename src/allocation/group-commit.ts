// Group commit: state changes run one at a time, in arrival order, each against a transaction
// that already holds the changes of those before it in its group; then the whole group is
// written as one atomic batch. Nothing else writes meanwhile (one drain loop at a time), so
// nothing of this server can change between reading state and writing the batch, and a slow
// batch write no longer makes every other request wait for its own write in turn.
// Several servers on one database (PostgreSQL) can: the store then refuses a group whose reads
// another server's commit overtook (STORE_CONFLICT, nothing written), and the group runs again
// from fresh reads, a bounded number of times (store/pg/write.ts says why this way).
import { setImmediate as immediate, setTimeout as sleep } from 'node:timers/promises';
import { PkmError } from '../errors.js';
import type { StoreContract } from '../store/contract.js';
import { Transaction } from './transaction.js';

/** Most requests in one batch, so one group's write stays small. */
const MAX_GROUP = 64;
/** Runs of one group at most, while other servers keep overtaking it. */
export const MAX_ATTEMPTS = 12;
/** Longest a group waits for connections that keep coming (settle). */
export const SETTLE_MS = 10;

/** A server whose new connections a group waits for: node's http and https servers. */
export interface Connections {
  on(event: 'connection', listener: () => void): unknown;
}

/** What a request will read, read for its whole group at once (Transaction.prefetchPods). */
export interface Prefetch {
  readonly pods?: readonly string[];
}

interface Pending {
  run(tx: Transaction): Promise<unknown>;
  readonly prefetch: Prefetch | undefined;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** The one committer of each open store. */
const committers = new WeakMap<StoreContract, GroupCommitter>();

export class GroupCommitter {
  private readonly queue: Pending[] = [];
  private draining = false;
  /** Connections the followed servers accepted, and how many of them the last group saw. */
  private accepted = 0;
  private seen = 0;
  private settleMs = SETTLE_MS;

  private constructor(private readonly store: StoreContract) {}

  /**
   * The store's one committer, made on first use. Two committers over one store would each
   * drain their own queue and write between the other's read and write: the store's one writer
   * is what keeps a key out of two pods, so there is no other way to make one.
   */
  static of(store: StoreContract): GroupCommitter {
    let group = committers.get(store);
    if (!group) {
      group = new GroupCommitter(store);
      committers.set(store, group);
    }
    return group;
  }

  /**
   * Runs `op` inside the next group. It resolves once the group's batch is written: if the
   * batch fails, every request of the group fails and nothing of it is written. If `op`
   * throws, nothing it staged is written.
   */
  run<T>(op: (tx: Transaction) => Promise<T>, prefetch?: Prefetch): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: op, prefetch, resolve: (v) => resolve(v as T), reject });
      if (this.draining) return;
      // The first request waits for the end of the event loop's I/O phase, so that requests
      // whose bytes arrived with it join its group: started at once, it went alone, and the
      // others waited for its sync (bench/allocate: a quarter of the groups held one request).
      this.draining = true;
      setImmediate(() => void this.drain());
    });
  }

  /**
   * Counts the server's new connections: a group waits while they keep coming, up to `settleMs`
   * (settle).
   */
  followConnections(server: Connections, settleMs = SETTLE_MS): void {
    this.settleMs = settleMs;
    server.on('connection', () => {
      this.accepted++;
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        await this.settle();
        await this.runGroup(this.queue.splice(0, MAX_GROUP));
      }
    } finally {
      this.draining = false;
    }
  }

  /**
   * Waits while the followed servers keep accepting connections: their requests join this group
   * rather than wait for the next ones. Node 20's libuv accepts one connection per turn of the
   * event loop (libuv PR #3696), and a turn that ends a group's write runs the next group and
   * answers the last one: under load, pods starting together were accepted about one per group,
   * and the last of 50 waited up to 200 ms, where requests on open connections waited one group
   * (bench/allocate, issue 17, point 4). A turn that accepts none ends the wait: the kernel had
   * none queued (epoll is level-triggered). So a lone new connection costs one turn, and requests
   * on open connections none. The wait is bounded: settleMs, checked between turns (so one
   * turn's work more), or a full group. A client that connects without end, before any request
   * or authentication, can make every group wait that long, never stop one.
   */
  private async settle(): Promise<void> {
    const start = performance.now();
    while (
      this.accepted !== this.seen &&
      this.queue.length < MAX_GROUP &&
      performance.now() - start < this.settleMs
    ) {
      this.seen = this.accepted;
      // Two: from the poll phase (a write's end), one setImmediate runs before the next poll.
      await immediate();
      await immediate();
    }
    this.seen = this.accepted;
  }

  private async runGroup(group: Pending[]): Promise<void> {
    let live = group;
    for (let attempt = 1; live.length > 0; attempt++) {
      const last = attempt >= MAX_ATTEMPTS;
      const tx = new Transaction(this.store);
      const done: Array<{ pending: Pending; value: unknown; leaderOnly: boolean }> = [];
      /** Requests whose reads disagreed (another server's commit in between): run again. */
      const raced = new Set<Pending>();
      await prefetch(tx, live);
      for (const pending of live) {
        tx.begin();
        const leaderBefore = tx.needsLeader;
        try {
          const value = await pending.run(tx);
          tx.keep();
          done.push({ pending, value, leaderOnly: tx.needsLeader && !leaderBefore });
        } catch (err) {
          // Whatever it staged before it threw goes too: the rest of the group stays as it was.
          tx.rollback();
          if (isConflict(err) && !last) raced.add(pending);
          else pending.reject(err);
        }
      }
      if (raced.size > 0) {
        // Read again from the start, in the same order, with what the others did since.
        live = live.filter((p) => raced.has(p) || done.some((d) => d.pending === p));
        await backOff(attempt);
        continue;
      }
      try {
        if (!tx.isEmpty) await this.store.commit(tx.change());
      } catch (err) {
        if (
          err instanceof PkmError &&
          err.code === 'NOT_LEADER' &&
          done.some((d) => d.leaderOnly)
        ) {
          // The leadership was lost: only what needed it fails; the rest runs again.
          for (const d of done) if (d.leaderOnly) d.pending.reject(err);
          live = done.filter((d) => !d.leaderOnly).map((d) => d.pending);
          continue;
        }
        if (isConflict(err) && !last) {
          live = done.map((d) => d.pending);
          await backOff(attempt);
          continue;
        }
        for (const { pending } of done) pending.reject(err);
        return;
      }
      for (const { pending, value } of done) pending.resolve(value);
      return;
    }
  }
}

/**
 * Reads what the group's requests said they will read, in one read. A failure here is left to
 * the requests' own reads, which report it as theirs.
 */
async function prefetch(tx: Transaction, group: readonly Pending[]): Promise<void> {
  const pods = group.flatMap((p) => p.prefetch?.pods ?? []);
  await tx.prefetchPods(pods).catch(() => undefined);
}

function isConflict(err: unknown): boolean {
  return err instanceof PkmError && err.code === 'STORE_CONFLICT';
}

/** Jittered and growing: servers that keep colliding spread out. */
function backOff(attempt: number): Promise<void> {
  return sleep(Math.random() * 4 * attempt);
}
