// Runs EIP-2335 KDFs (scrypt, pbkdf2) on a bounded pool of worker threads. An import decrypts
// hundreds of keystores, each a deliberately slow KDF (EIP-2335 recommends scrypt n=2^18: about
// a second of CPU and 256 MiB): on the event loop that would stall a running server, and one
// thread would use one core. The workers see the password bytes and salt and answer the
// derived key; the keystore's checksum and cipher stay with keystore.ts on the caller's side.
import { availableParallelism, freemem } from 'node:os';
import { Worker } from 'node:worker_threads';
import { PkmError } from '../errors.js';
import type { KdfModule } from './keystore.js';

/** At most this many workers: beyond it, scrypt's memory matters more than the cores. */
const MAX_WORKERS = 4;
/** What a worker costs beside its KDF (its own heap, buffers). */
const WORKER_OVERHEAD = 32 * 1024 * 1024;

/**
 * How many KDFs may run at once: one per core, at most MAX_WORKERS, and no more than half of
 * the free memory holds (`kdfBytes` each, scrypt's 128 * n * r * p). At least one.
 */
export function poolSize(kdfBytes: number): number {
  const byMemory = Math.floor(freemem() / 2 / (kdfBytes + WORKER_OVERHEAD));
  return Math.max(1, Math.min(availableParallelism(), MAX_WORKERS, byMemory));
}

/**
 * The worker's whole program, as a data: URL module: it runs the same from dist/ and under the
 * tests' TypeScript loader (as proof-verifier.ts does), and needs node:crypto alone. The
 * derived key goes back over the MessagePort as a transferred buffer, and nothing is kept.
 */
const WORKER_SOURCE = `
import { parentPort } from 'node:worker_threads';
import { pbkdf2Sync, scryptSync } from 'node:crypto';
parentPort.on('message', ({ id, kdf, password }) => {
  const pw = Buffer.from(password);
  try {
    const salt = Buffer.from(kdf.params.salt, 'hex');
    const p = kdf.params;
    const dk = kdf.function === 'pbkdf2'
      ? pbkdf2Sync(pw, salt, p.c, 32, 'sha256')
      : scryptSync(pw, salt, 32, { N: p.n, r: p.r, p: p.p, maxmem: 128 * p.n * p.r * p.p + 33554432 });
    const out = new Uint8Array(dk);
    dk.fill(0);
    parentPort.postMessage({ id, dk: out }, [out.buffer]);
  } catch (err) {
    parentPort.postMessage({ id, error: String(err && err.message ? err.message : err) });
  } finally {
    pw.fill(0);
    password.fill(0);
  }
});
`;

interface Job {
  readonly id: number;
  readonly kdf: KdfModule;
  readonly password: Uint8Array;
  resolve(dk: Uint8Array): void;
  reject(err: Error): void;
}

interface Reply {
  readonly id: number;
  readonly dk?: Uint8Array;
  readonly error?: string;
}

function isReply(value: unknown): value is Reply {
  return typeof value === 'object' && value !== null && 'id' in value;
}

export class KdfPool {
  private readonly idle: Worker[] = [];
  private readonly all = new Set<Worker>();
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private nextId = 0;
  private closed = false;

  constructor(private readonly size: number) {}

  /** The key the keystore's KDF derives from these password bytes (EIP-2335 processed). */
  derive(kdf: KdfModule, password: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new PkmError('INTERNAL', 'the KDF pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, kdf, password, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new PkmError('INTERNAL', 'pool closed'));
    await Promise.all([...this.all].map((w) => w.terminate()));
    this.all.clear();
    this.idle.length = 0;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const worker = this.idle.pop() ?? (this.all.size < this.size ? this.start() : undefined);
      if (!worker) return;
      const job = this.queue.shift();
      if (!job) {
        this.idle.push(worker);
        return;
      }
      this.running.set(worker, job);
      // A copy of the password bytes alone, transferred: the caller's may be a view of Buffer's
      // shared pool, which a message would copy whole (other secrets with it). The caller
      // zeroes its own copy, the worker this one.
      const password = Uint8Array.from(job.password);
      worker.postMessage({ id: job.id, kdf: job.kdf, password }, [password.buffer]);
    }
  }

  private start(): Worker {
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(WORKER_SOURCE)}`));
    this.all.add(worker);
    worker.on('message', (reply: unknown) => {
      const job = this.running.get(worker);
      this.running.delete(worker);
      this.idle.push(worker);
      if (job && isReply(reply)) {
        if (reply.dk instanceof Uint8Array) job.resolve(reply.dk);
        else
          job.reject(
            new PkmError('KEYSTORE_INVALID', `the keystore's KDF failed: ${reply.error ?? ''}`),
          );
      }
      this.pump();
    });
    // A worker that dies fails its job; the others go on, and a new one replaces it.
    const fail = (err: Error) => {
      const job = this.running.get(worker);
      this.running.delete(worker);
      this.all.delete(worker);
      const at = this.idle.indexOf(worker);
      if (at >= 0) this.idle.splice(at, 1);
      job?.reject(new PkmError('INTERNAL', `a KDF worker failed: ${err.message}`));
      if (!this.closed) this.pump();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (this.all.has(worker)) fail(new Error(`exited with ${code}`));
    });
    return worker;
  }
}
