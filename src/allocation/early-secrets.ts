// Secrets opened while the batch that hands them out is written (issue 17, point 4). Opened
// after the write, as they were, each group's answers waited for the secret worker's round trip
// (secret-opener.ts) behind the next group's work; opened during the sync, they are ready when
// it ends, and the answers go out at once. Nothing is handed out earlier: the hand-out still
// waits for the synced batch (DESIGN.md "Store"). An opening whose batch fails, whose
// hand-out fails after it, or that a retried pass of the group replaces, is wiped once it is
// open: its plaintext is nobody's (Allocator.allocate, allocateIn).
import type { KeyRecord } from '../store/records.js';
import type { SealedOf, SecretCodec } from '../store/secret-codec.js';

export class EarlySecrets {
  private constructor(readonly secrets: Promise<Uint8Array[]>) {
    // Awaited at the hand-out; a failure of a discarded opening is nobody's to hear.
    secrets.catch(() => undefined);
  }

  /**
   * Starts opening the secrets of `records`, in order; undefined when one has none (the
   * hand-out refuses that record itself, as it did).
   */
  static open(codec: SecretCodec, records: readonly KeyRecord[]): EarlySecrets | undefined {
    const sealed: SealedOf[] = [];
    for (const { secret, pubkey } of records) {
      if (secret === undefined) return undefined;
      sealed.push({ sealed: secret, pubkey });
    }
    return new EarlySecrets(codec.openMany(sealed));
  }

  /** Not handed out: each secret is zeroed as soon as it is open. */
  discard(): void {
    this.secrets.then(
      (list) => {
        for (const secret of list) secret.fill(0);
      },
      () => undefined,
    );
  }
}
