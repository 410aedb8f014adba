// Group commit: state changes run one at a time, in arrival order, each against a transaction
// that already holds the changes of those before it in its group; then the whole group is
// written as one atomic batch. Nothing else writes meanwhile (one drain loop at a time), so
// nothing can change between reading state and writing the batch, and a slow batch write no
// longer makes every other request wait for its own write in turn.
import type { StoreContract } from '../store/contract.js';
import { Transaction } from './transaction.js';

/** Most requests in one batch, so one group's write stays small. */
const MAX_GROUP = 64;

interface Pending {
  run(tx: Transaction): Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/** The one committer of each open store. */
const committers = new WeakMap<StoreContract, GroupCommitter>();

export class GroupCommitter {
  private readonly queue: Pending[] = [];
  private draining = false;

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
  run<T>(op: (tx: Transaction) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ run: op, resolve: (v) => resolve(v as T), reject });
      if (!this.draining) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) await this.runGroup(this.queue.splice(0, MAX_GROUP));
    } finally {
      this.draining = false;
    }
  }

  private async runGroup(group: Pending[]): Promise<void> {
    const tx = new Transaction(this.store);
    const done: Array<{ pending: Pending; value: unknown }> = [];
    for (const pending of group) {
      tx.begin();
      try {
        done.push({ pending, value: await pending.run(tx) });
        tx.keep();
      } catch (err) {
        // Whatever it staged before it threw goes too: the rest of the group stays as it was.
        tx.rollback();
        pending.reject(err);
      }
    }
    try {
      if (!tx.isEmpty) await this.store.commit(tx.change());
    } catch (err) {
      for (const { pending } of done) pending.reject(err);
      return;
    }
    for (const { pending, value } of done) pending.resolve(value);
  }
}
