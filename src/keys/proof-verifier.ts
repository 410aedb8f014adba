// Checks heartbeat proofs (proof.ts) on a worker thread: a pure-JS BLS verification takes ~50 ms,
// and a pod that lost its store's record may prove dozens of keys at once. On the event loop
// that would stall every allocation behind it; on the worker it stalls nothing.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { PROOF_DST } from './proof.js';

export interface ProofItem {
  /** 0x-hex compressed G1 public key. */
  readonly pubkey: string;
  readonly message: Uint8Array;
  /** 0x-hex compressed G2 signature. */
  readonly signature: string;
}

interface Reply {
  readonly id: number;
  readonly valid: readonly boolean[];
}

/**
 * The worker's whole program. It is a data: URL module, so it runs the same under the built
 * server and under the tests' TypeScript loader; it imports only @noble/curves, by file URL.
 * A malformed point or signature is simply not valid.
 */
function workerSource(nobleUrl: string): string {
  return `
import { parentPort } from 'node:worker_threads';
import { bls12_381 } from ${JSON.stringify(nobleUrl)};
const sigs = bls12_381.longSignatures;
const DST = ${JSON.stringify(PROOF_DST)};
const bytes = (hex) => Uint8Array.from(Buffer.from(hex.slice(2), 'hex'));
parentPort.on('message', ({ id, items }) => {
  const valid = items.map(({ pubkey, message, signature }) => {
    try {
      return sigs.verify(bytes(signature), sigs.hash(message, DST), bytes(pubkey));
    } catch {
      return false;
    }
  });
  parentPort.postMessage({ id, valid });
});
`;
}

export class ProofVerifier {
  private worker: Worker | undefined;
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (valid: readonly boolean[]) => void; reject: (err: Error) => void }
  >();

  /** Whether each proof is a valid signature by its pubkey over its message. */
  verify(items: readonly ProofItem[]): Promise<readonly boolean[]> {
    if (items.length === 0) return Promise.resolve([]);
    const worker = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref(); // keep the process up while a check is out
      worker.postMessage({ id, items });
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (worker) await worker.terminate();
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const noble = createRequire(import.meta.url).resolve('@noble/curves/bls12-381.js');
    const source = workerSource(pathToFileURL(noble).href);
    const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(source)}`));
    worker.unref();
    worker.on('message', (reply: Reply) => {
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      waiting?.resolve(reply.valid);
    });
    // A crashed worker fails every check that was out: unverified claims are refused.
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = undefined;
      for (const { reject } of this.pending.values()) reject(err);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the proof worker exited with ${code}`)));
    this.worker = worker;
    return worker;
  }
}
