// Group commit: state changes run one at a time, in arrival order, each against a transaction
// that already holds the changes of those before it in its group; then the whole group is
// written as one atomic batch. Nothing else writes meanwhile (one drain loop at a time), so
// nothing of this server can change between reading state and writing the batch, and a slow
// batch write no longer makes every other request wait for its own write in turn.
// Several servers on one database (PostgreSQL) can: the store then refuses a group whose reads
// another server's commit overtook (STORE_CONFLICT, nothing written), and the group runs again
// from fresh reads, a bounded number of times (store/pg/write.ts says why this way).
// A store with one writer (LevelDB) pipelines: while one group's batch is being synced, the
// next group runs on top of it (its Transaction reads the first one's staged changes first),
// and its batch is written once the first one's is. So the sync and the next group's work
// overlap (issue 17, point 4: they took turns, and the sync was a third of each turn). The next
// group is answered only once its own batch is written, after the first one's: if that fails,
// the next one fails with it, having decided on changes that were never written.
import { setTimeout as sleep } from 'node:timers/promises';
import { PkmError } from '../errors.js';
import type { StoreContract } from '../store/contract.js';
import { Transaction } from './transaction.js';

/** Most requests in one batch, so one group's write stays small. */
const MAX_GROUP = 64;
/** Runs of one group at most, while other servers keep overtaking it. */
export const MAX_ATTEMPTS = 12;

/** What a request will read, read for its whole group at once (Transaction.prefetchPods). */
export interface Prefetch {
  readonly pods?: readonly string[];
  /**
   * The request reads the store past its transaction (a scan of every record): it runs only
   * once every earlier batch is written, never on top of one being written (see the top).
   */
  readonly settled?: boolean;
}

interface Pending {
  run(tx: Transaction): Promise<unknown>;
  readonly prefetch: Prefetch | undefined;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** A group of a store with one writer whose batch is not written yet (see the top). */
interface InFlight {
  readonly tx: Transaction;
  /** Resolves when the batch's write starts (true), or false: it never will (see written). */
  readonly started: Promise<boolean>;
  /** Settles once the batch is written, or failed, or given up with the one it ran on. */
  readonly written: Promise<void>;
}

/** The one committer of each open store. */
const committers = new WeakMap<StoreContract, GroupCommitter>();

export class GroupCommitter {
  private readonly queue: Pending[] = [];
  private draining = false;
  /** The last group of a store with one writer, until its batch is written. */
  private inFlight: InFlight | undefined;

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

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_GROUP);
        if (this.store.concurrentWriters) await this.runGroup(group);
        else await this.runPipelined(group);
      }
    } finally {
      this.draining = false;
    }
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

  /**
   * Runs a group of a store with one writer on top of the previous group while that one's
   * batch is written (see the top). Returns once this group's batch is queued to be written:
   * the next group may run then. Its requests are answered once that batch is written, their
   * failures too: an answer may rest on the previous group's changes, durable only then.
   */
  private async runPipelined(group: readonly Pending[]): Promise<void> {
    const previous = this.inFlight;
    const settled = group.some((p) => p.prefetch?.settled === true);
    if (settled) await previous?.written.catch(() => undefined);
    // One batch in flight under a running group at most: the previous group's own base is
    // written once its write starts. A previous group that will never be written is no base.
    const base = !settled && previous && (await previous.started) ? previous.tx : undefined;
    const tx = new Transaction(this.store, base);
    const answers: Array<(err?: unknown) => void> = [];
    for (const pending of group) {
      tx.begin();
      try {
        const value = await pending.run(tx);
        tx.keep();
        answers.push((err) => (err === undefined ? pending.resolve(value) : pending.reject(err)));
      } catch (err) {
        tx.rollback();
        answers.push(() => pending.reject(err));
      }
    }
    let markStarted: (started: boolean) => void = () => undefined;
    const started = new Promise<boolean>((resolve) => {
      markStarted = resolve;
    });
    const written = (async () => {
      const before = await previous?.written.then(
        () => undefined,
        (err: unknown) => err ?? new Error('the previous batch failed'),
      );
      // Decided on the previous group's changes, which were never written: nothing of this
      // group may be written either.
      if (before !== undefined && base !== undefined) {
        markStarted(false);
        throw before;
      }
      markStarted(true);
      // A group that changed nothing is applied once the batch before it is: the store shows
      // all it read, and the next group need not run on it (nor on its base, and so on).
      if (tx.isEmpty) tx.markApplied();
      else await this.store.commit(tx.change(), () => tx.markApplied());
    })();
    this.inFlight = { tx, started, written };
    written.then(
      () => {
        for (const answer of answers) answer();
      },
      (err: unknown) => {
        for (const answer of answers) answer(err ?? new Error('the batch failed'));
      },
    );
    void written.then(
      () => this.settled(tx),
      () => this.settled(tx),
    );
  }

  private settled(tx: Transaction): void {
    if (this.inFlight?.tx === tx) this.inFlight = undefined;
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
