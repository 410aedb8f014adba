// One change at a time per fake: an import, a delete or an attestation step runs to its end
// before the next starts, as a client's key manager serialises them. So a DELETE that has
// answered leaves no signing step behind it that still holds the key (local_keystores.yaml,
// delete: "Guarantee that key(s) can not produce any more signature").
export class Lock {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
