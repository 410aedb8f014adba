// Pod records edited by one operation that touches several pods (a heartbeat, a removal
// report), each kept from its state before, so that the operation stages one change per pod.
import type { PodRecord } from '../store/records.js';
import type { Transaction } from './transaction.js';
import { editPod, type PodEdit, podChange } from './transitions.js';

export class PodEdits {
  private readonly edits = new Map<
    string,
    { before: PodRecord | undefined; after: PodRecord | undefined }
  >();

  constructor(
    private readonly tx: Transaction,
    private readonly now: number,
  ) {}

  async edit(name: string, edit: PodEdit): Promise<void> {
    const entry = await this.entry(name);
    entry.after = editPod(entry.after, edit, this.now);
  }

  /** The pod's record with this operation's edits so far. */
  async current(name: string): Promise<PodRecord | undefined> {
    return (await this.entry(name)).after;
  }

  changes() {
    return [...this.edits].map(([name, { before, after }]) => podChange(name, before, after));
  }

  private async entry(name: string) {
    let entry = this.edits.get(name);
    if (!entry) {
      const before = await this.tx.getPod(name);
      entry = { before, after: before };
      this.edits.set(name, entry);
    }
    return entry;
  }
}
