// Pods asking a fleet of servers for keys, as `pkm client` would: each request bounded in time,
// a coded 503 asked again after max(jittered backoff, Retry-After) as src/client/retry.ts does,
// a lost connection asked again of another server. Every attempt and every acknowledged answer
// goes into a ledger, which is what the fault tests check the database against afterwards.
import { setTimeout as sleep } from 'node:timers/promises';
import { rememberSecret } from '../support/secret-ledger.js';
import type { Fleet } from './ha-fleet.js';

export type Op =
  | { readonly kind: 'allocate'; readonly count: number }
  | { readonly kind: 'release' };

export const allocate = (count: number): Op => ({ kind: 'allocate', count });
export const release: Op = { kind: 'release' };

/** What one request got back. */
export type Answer =
  | {
      readonly kind: 'status';
      readonly status: number;
      readonly code?: string;
      readonly retryAfter?: string;
      readonly message?: string;
      /** An allocation's pubkeys, or a release's released ones. */
      readonly pubkeys?: string[];
    }
  /** The connection failed or closed before an answer (a killed server). */
  | { readonly kind: 'lost'; readonly reason: string }
  /** No answer within the request's time bound. */
  | { readonly kind: 'hung' };

export interface Attempt {
  readonly pod: string;
  readonly op: Op;
  readonly server: number;
  readonly sentAt: number;
  readonly answeredAt: number;
  readonly answer: Answer;
}

/** A span of time in which `pod` surely held `key`: from an acknowledgement to a release sent. */
export interface Hold {
  readonly pod: string;
  readonly key: string;
  readonly from: number;
  until?: number;
}

interface PodState {
  /** The keys as of the last acknowledged request ([] after a release); undefined: none yet. */
  acked: string[] | undefined;
  /** False once a request of the pod ended unacknowledged: its state is unknown since. */
  settled: boolean;
  /** Holds not closed yet, by key. */
  readonly open: Map<string, Hold>;
}

export interface ClientOptions {
  /** One request's bound: past it the request counts as hung (ms). */
  readonly requestTimeoutMs: number;
  /** How long one operation keeps asking, retries included (ms). */
  readonly opDeadlineMs: number;
}

export class Ledger {
  readonly attempts: Attempt[] = [];
  readonly holds: Hold[] = [];
  /** Every key some allocation handed out, with the pods it went to. */
  readonly handedOut = new Map<string, Set<string>>();
  /** Operations that ended without a 200, and acknowledgements that contradict each other. */
  readonly problems: string[] = [];
  private readonly pods = new Map<string, PodState>();
  /** Acknowledged operations so far (for tests that act mid-burst). */
  acks = 0;

  private state(pod: string): PodState {
    let s = this.pods.get(pod);
    if (!s) {
      s = { acked: undefined, settled: true, open: new Map() };
      this.pods.set(pod, s);
    }
    return s;
  }

  /** The pods whose every operation was acknowledged, with the keys they hold by their last. */
  settledPods(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const [pod, s] of this.pods) if (s.settled && s.acked) out.set(pod, s.acked);
    return out;
  }

  allPods(): string[] {
    return [...this.pods.keys()];
  }

  acked(pod: string): string[] | undefined {
    return this.state(pod).acked;
  }

  /** A release may take effect from its first send on: the pod's holds end there. */
  releaseSent(pod: string, at: number): void {
    const s = this.state(pod);
    for (const hold of s.open.values()) hold.until = at;
    s.open.clear();
  }

  /** `firstTry`: no earlier attempt of this operation may have been applied unseen. */
  acknowledged(
    pod: string,
    op: Op,
    pubkeys: readonly string[],
    at: number,
    firstTry: boolean,
  ): void {
    const s = this.state(pod);
    this.acks++;
    if (op.kind === 'release') {
      // What it released is what it held, as far as the pod knows.
      const held = [...(s.acked ?? [])].sort().join();
      if (firstTry && s.settled && [...pubkeys].sort().join() !== held)
        this.problems.push(`${pod}: held [${held}], its release released [${pubkeys}]`);
      s.acked = [];
      return;
    }
    if (pubkeys.length !== op.count)
      this.problems.push(`${pod}: asked for ${op.count} keys, got ${pubkeys.length}`);
    // A pod keeps what it holds until it releases it: a later allocation returns it again.
    for (const key of s.open.keys())
      if (!pubkeys.includes(key))
        this.problems.push(`${pod}: held ${key}, and its next allocation came back without it`);
    for (const key of pubkeys) {
      if (!s.open.has(key)) {
        const hold: Hold = { pod, key, from: at };
        s.open.set(key, hold);
        this.holds.push(hold);
      }
      const to = this.handedOut.get(key) ?? new Set<string>();
      this.handedOut.set(key, to.add(pod));
    }
    s.acked = [...pubkeys];
  }

  gaveUp(pod: string, op: Op, why: string): void {
    this.state(pod).settled = false;
    this.problems.push(`${pod} ${describe(op)}: ${why}`);
  }

  /** Answer times (ms) of the attempts `filter` keeps: median, 99th percentile, slowest. */
  latency(filter: (a: Attempt) => boolean = () => true): { p50: number; p99: number; max: number } {
    const ms = this.attempts
      .filter(filter)
      .map((a) => a.answeredAt - a.sentAt)
      .sort((a, b) => a - b);
    const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0;
    return { p50: at(0.5), p99: at(0.99), max: ms[ms.length - 1] ?? 0 };
  }

  /** How many answers of each kind, e.g. {"200": 512, "503 STORE_CONFLICT": 3, "lost": 7}. */
  tally(filter: (a: Attempt) => boolean = () => true): Record<string, number> {
    const out: Record<string, number> = {};
    for (const a of this.attempts.filter(filter)) {
      const k = label(a.answer);
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  }
}

export function label(a: Answer): string {
  if (a.kind !== 'status') return a.kind;
  return a.code === undefined ? String(a.status) : `${a.status} ${a.code}`;
}

function describe(op: Op): string {
  return op.kind === 'release' ? 'DELETE' : `POST count ${op.count}`;
}

/** One request to one server, bounded in time; never throws. */
export async function send(url: string, pod: string, op: Op, timeoutMs: number): Promise<Answer> {
  const init: RequestInit =
    op.kind === 'release'
      ? { method: 'DELETE', signal: AbortSignal.timeout(timeoutMs) }
      : {
          method: 'POST',
          body: JSON.stringify({ count: op.count }),
          headers: { 'content-type': 'application/json' },
          signal: AbortSignal.timeout(timeoutMs),
        };
  let res: Response;
  let text: string;
  try {
    res = await fetch(`${url}/v1/pods/${pod}/keys`, init);
    text = await res.text();
  } catch (err) {
    if (err instanceof DOMException && err.name === 'TimeoutError') return { kind: 'hung' };
    return { kind: 'lost', reason: err instanceof Error ? String(err.cause ?? err) : String(err) };
  }
  return parseAnswer(res, text);
}

function parseAnswer(res: Response, text: string): Answer {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { kind: 'status', status: res.status, message: text.slice(0, 200) };
  }
  const retryAfter = res.headers.get('retry-after') ?? undefined;
  const base = {
    kind: 'status' as const,
    status: res.status,
    ...(retryAfter ? { retryAfter } : {}),
  };
  if (typeof body !== 'object' || body === null) return base;
  if ('error' in body) {
    const e = body.error;
    const code = typeof e === 'object' && e !== null && 'code' in e ? String(e.code) : undefined;
    const msg = typeof e === 'object' && e !== null && 'message' in e ? String(e.message) : '';
    return { ...base, ...(code === undefined ? {} : { code }), message: msg };
  }
  if ('keys' in body && Array.isArray(body.keys)) {
    const pubkeys: string[] = [];
    for (const k of body.keys) {
      if (typeof k?.secretKey === 'string') rememberSecret(k.secretKey);
      if (typeof k?.pubkey === 'string') pubkeys.push(k.pubkey);
    }
    return { ...base, pubkeys };
  }
  if ('released' in body && Array.isArray(body.released))
    return { ...base, pubkeys: body.released.map(String) };
  return base;
}

/**
 * A coded 503 and a lost connection are asked again; anything else but a 200 is final. A hung
 * request is not: the server may still carry it out after a retry was answered, and the pod's
 * state would then be unknown to the test (a hang fails the tests anyway).
 */
function retryable(a: Answer): boolean {
  return a.kind === 'lost' || (a.kind === 'status' && a.status === 503);
}

/**
 * Runs one operation of `pod` until it is acknowledged or its deadline passes: first at
 * `preferred` (if alive), then at live servers in turn, as pods behind a Service would.
 */
export async function runOp(
  fleet: Fleet,
  ledger: Ledger,
  pod: string,
  op: Op,
  preferred: number,
  opts: ClientOptions,
): Promise<void> {
  const first = Date.now();
  const deadline = first + opts.opDeadlineMs;
  if (op.kind === 'release') ledger.releaseSent(pod, first);
  let server = fleet.pick(preferred);
  for (let attempt = 1; ; attempt++) {
    const sentAt = Date.now();
    const answer = await send(fleet.url(server), pod, op, opts.requestTimeoutMs);
    const answeredAt = Date.now();
    ledger.attempts.push({ pod, op, server, sentAt, answeredAt, answer });
    if (answer.kind === 'status' && answer.status === 200) {
      ledger.acknowledged(pod, op, answer.pubkeys ?? [], answeredAt, attempt === 1);
      return;
    }
    if (!retryable(answer)) {
      ledger.gaveUp(
        pod,
        op,
        `refused: ${label(answer)} ${answer.kind === 'status' ? (answer.message ?? '') : ''}`,
      );
      return;
    }
    // As src/client/retry.ts: full jitter from 500 ms doubling, at least the Retry-After.
    const backoff = Math.random() * Math.min(30_000, 500 * 2 ** (attempt - 1));
    const told = answer.kind === 'status' ? Number(answer.retryAfter ?? 0) * 1000 : 0;
    const wait = Math.max(backoff, Number.isFinite(told) ? told : 0);
    if (Date.now() + wait > deadline) {
      ledger.gaveUp(pod, op, `gave up after ${attempt} attempts, the last ${label(answer)}`);
      return;
    }
    await sleep(wait);
    server = fleet.pick((server + 1) % fleet.servers.length);
  }
}

/** Runs each pod's operations in order, every pod at once; op n of a pod goes first to n's server. */
export async function runScripts(
  fleet: Fleet,
  ledger: Ledger,
  scripts: ReadonlyMap<string, readonly Op[]>,
  opts: ClientOptions,
): Promise<void> {
  let n = 0;
  await Promise.all(
    [...scripts].map(async ([pod, ops]) => {
      for (const op of ops) await runOp(fleet, ledger, pod, op, n++ % fleet.servers.length, opts);
    }),
  );
}
