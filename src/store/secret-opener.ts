// Opens the secrets that allocations hand out on a worker thread (secret-worker.mjs). Issue
// 17, point 4: opening them (AES-256-GCM, gcm.mjs) took about 17 us a key of the server's main
// thread, a fifth of an allocation's work there, and the main thread is what an allocation
// waits for. The opens asked for in one turn of the event loop (the allocations of one group
// commit, answered together) go to the worker as one message.
//
// Nothing depends on the worker: if it cannot start, or stops, what it was asked opens on the
// main thread, and every later open too. The worker keeps nothing: each batch carries the data
// keys it needs (so a KEK rotation needs no message of its own), and the worker wipes its copy.
import { Worker } from 'node:worker_threads';
import { openGcm } from './gcm.mjs';

const WORKER_SCRIPT = new URL('./secret-worker.mjs', import.meta.url);
/**
 * A batch the worker has not answered by then is taken from it: the worker is stopped, and
 * what it held opens here (lost()). A batch takes about a millisecond; a worker alive but
 * silent would otherwise leave its allocations unanswered for good.
 */
const ANSWER_TIMEOUT_MS = 10_000;

interface Pending {
  readonly key: Uint8Array;
  readonly sealed: string;
  readonly aad: string;
  readonly done: (plain: Uint8Array | undefined) => void;
}

/** The worker's answer to one batch (secret-worker.mjs). */
interface Reply {
  readonly id: number;
  readonly plain: Uint8Array;
  readonly lengths: readonly number[];
}

export class SecretOpener {
  private worker: Worker | undefined;
  /** The worker could not start, or stopped: everything opens on the main thread. */
  private broken = false;
  /** onFallback was told (or the opener was closed on purpose). */
  private told = false;
  private queued: Pending[] = [];
  private readonly inFlight = new Map<
    number,
    { readonly batch: readonly Pending[]; readonly timer: NodeJS.Timeout }
  >();
  private nextBatch = 0;
  /** Secrets opened by the worker and on the main thread, and the batches sent to the worker. */
  readonly stats = { worker: 0, main: 0, batches: 0 };
  /** Told once, when the secrets start to open on the main thread for good (the server logs it). */
  onFallback: ((why: string) => void) | undefined;

  constructor(
    private readonly script: URL = WORKER_SCRIPT,
    private readonly answerTimeoutMs = ANSWER_TIMEOUT_MS,
  ) {}

  /**
   * The plaintext of a secret sealed under `key` (hex, as records keep it) with `aad`;
   * undefined when it does not open (a wrong key, or a tampered record).
   */
  open(key: Uint8Array, sealed: string, aad: string): Promise<Uint8Array | undefined> {
    return new Promise((done) => {
      // setImmediate runs once the turn's callbacks and promise jobs are done: by then every
      // allocation of a group commit has asked for its secrets.
      if (this.queued.length === 0) setImmediate(() => this.flush());
      this.queued.push({ key, sealed, aad, done });
    });
  }

  /** Stops the worker; what it had not answered opens on the main thread, as later opens do. */
  async close(): Promise<void> {
    this.broken = true;
    this.told = true; // on purpose: no fallback to tell of
    await this.worker?.terminate();
  }

  private flush(): void {
    // An item that would not fit the message's format (a space or line break, read from a
    // damaged record) opens here: it cannot shift the others' answers.
    const batch = this.queued.filter(fitsLine);
    if (batch.length < this.queued.length) this.openHere(this.queued.filter((p) => !fitsLine(p)));
    this.queued = [];
    const worker = batch.length > 0 ? this.running() : undefined;
    if (!worker) {
      this.openHere(batch);
      return;
    }
    try {
      this.post(worker, batch);
    } catch {
      // Not sent (a batch too large for one string): each opens, or fails, here on its own.
      this.openHere(batch);
    }
  }

  private post(worker: Worker, batch: readonly Pending[]): void {
    const used: Uint8Array[] = [];
    // One string for the batch: structured clone copies value by value, and a batch of 68
    // items as ~200 small values took 130 us to post, as one string 80-110 us.
    const items = batch
      .map((p) => {
        let index = used.indexOf(p.key);
        if (index < 0) index = used.push(p.key) - 1;
        return `${index} ${p.sealed} ${p.aad}`;
      })
      .join('\n');
    // Copies of the keys alone (a Buffer may be a view of a shared pool, which a message would
    // copy whole), transferred: no copy stays behind on this thread.
    const keys = used.map((key) => Uint8Array.from(key));
    const id = this.nextBatch++;
    worker.postMessage(
      { id, keys, items },
      keys.map((key) => key.buffer),
    );
    const timer = setTimeout(() => {
      this.tell(`its worker thread did not answer within ${this.answerTimeoutMs} ms`);
      void worker.terminate();
    }, this.answerTimeoutMs);
    timer.unref(); // the worker's ref() below keeps the process up while a batch is out
    this.inFlight.set(id, { batch, timer });
    this.stats.batches++;
    worker.ref(); // an answer is awaited: the process stays up for it
  }

  private running(): Worker | undefined {
    if (this.broken) return undefined;
    if (this.worker) return this.worker;
    let worker: Worker;
    try {
      worker = new Worker(this.script);
    } catch {
      this.broken = true;
      this.tell('its worker thread could not be made');
      return undefined;
    }
    worker.on('message', (message: unknown) => {
      const reply = replyOf(message);
      // Only a defect of secret-worker.mjs sends anything else: let the worker go.
      if (reply) this.answered(reply);
      else void worker.terminate();
    });
    worker.on('error', () => {}); // followed by 'exit', which opens what it left
    // An answer that cannot be read leaves its batch unanswered: the worker is let go.
    worker.on('messageerror', () => void worker.terminate());
    worker.once('exit', (code) => this.lost(worker, code));
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private answered(reply: Reply): void {
    const sent = this.inFlight.get(reply.id);
    if (!sent) return;
    this.inFlight.delete(reply.id);
    clearTimeout(sent.timer);
    const { batch } = sent;
    if (this.inFlight.size === 0) this.worker?.unref();
    const { plain, lengths } = reply;
    // An answer not shaped like its batch is trusted for none of it: opened here instead.
    const total = lengths.reduce((sum, n) => sum + Math.max(n, 0), 0);
    if (lengths.length !== batch.length || total !== plain.length) {
      this.openHere(batch);
      return;
    }
    let at = 0;
    batch.forEach((p, i) => {
      const length = lengths[i] ?? -1;
      if (length < 0) {
        p.done(undefined);
        return;
      }
      // A buffer of its own: a view would hold every other secret of the batch.
      p.done(plain.slice(at, at + length));
      at += length;
    });
    plain.fill(0);
    this.stats.worker += batch.length;
  }

  /** The worker stopped: what it had not answered opens here, and so does all that follows. */
  private lost(worker: Worker, code: number): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    const left: Pending[] = [];
    for (const { batch, timer } of this.inFlight.values()) {
      clearTimeout(timer);
      left.push(...batch);
    }
    this.inFlight.clear();
    this.broken = true;
    this.openHere(left);
    this.tell(`its worker thread stopped (exit code ${code})`);
  }

  /** Tells onFallback, once; what it throws does not reach the opens (they are answered). */
  private tell(why: string): void {
    if (this.told) return;
    this.told = true;
    try {
      this.onFallback?.(why);
    } catch {
      // A broken logger: the secrets open all the same.
    }
  }

  private openHere(batch: readonly Pending[]): void {
    for (const p of batch) {
      let opened: Buffer | undefined;
      try {
        opened = openGcm(p.key, Buffer.from(p.sealed, 'hex'), Buffer.from(p.aad, 'utf8'));
      } catch {
        opened = undefined; // as in the worker: a key of the wrong size does not open
      }
      p.done(opened && Uint8Array.from(opened));
      opened?.fill(0);
    }
    this.stats.main += batch.length;
  }
}

function replyOf(message: unknown): Reply | undefined {
  if (typeof message !== 'object' || message === null) return undefined;
  if (!('id' in message && 'plain' in message && 'lengths' in message)) return undefined;
  const { id, plain, lengths } = message;
  if (typeof id !== 'number' || !(plain instanceof Uint8Array) || !Array.isArray(lengths))
    return undefined;
  if (!lengths.every((n): n is number => Number.isInteger(n))) return undefined;
  return { id, plain, lengths };
}

/** Neither field holds what secret-worker.mjs splits a batch by: a line break, a space. */
const fitsLine = (p: Pending): boolean => !holdsSeparator(p.sealed) && !holdsSeparator(p.aad);
const holdsSeparator = (field: string): boolean => field.includes(' ') || field.includes('\n');

/** The process's opener: one worker serves every store. */
export const secretOpener = new SecretOpener();
