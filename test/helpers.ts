import { mkdtemp, rm } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { GroupCommitter } from '../src/allocation/group-commit.js';
import type { BeaconGate } from '../src/beacon/liveness.js';
import type { KeySource } from '../src/keys/source.js';
import { createLogger } from '../src/log.js';
import type { Auth } from '../src/server/auth.js';
import { composeApp } from '../src/server/compose.js';
import { Store } from '../src/store/store.js';
import { rememberSecret } from './support/secret-ledger.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** Runs `fn` after the current test, last registered first. */
export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-test-'));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The KEK tests open their stores with (tests hold no real keys). */
export const testKek = async (): Promise<Buffer> => Buffer.alloc(32, 7);

export async function openTempStore(dir?: string): Promise<Store> {
  const store = await Store.open(dir ?? (await tempDir()), { kek: testKek });
  onCleanup(() => store.close());
  return store;
}

/** A wall clock and a monotonic clock the test moves by hand. */
export class FakeClock {
  /** The monotonic reading (ms); starts anywhere, only differences count. */
  mono = 1_000_000;
  constructor(public ms = Date.UTC(2026, 10, 23, 12, 0, 0)) {}
  readonly now = (): number => this.ms;
  readonly monotonic = (): number => this.mono;
  /** Time passes: both clocks move. */
  advance(ms: number): void {
    this.ms += ms;
    this.mono += ms;
  }
  /** The wall clock steps (an NTP correction): no time passed. */
  jumpWall(ms: number): void {
    this.ms += ms;
  }
}

export const MINUTE = 60_000;

export interface TestServer {
  readonly url: string;
  readonly store: Store;
  readonly clock: FakeClock;
  readonly allocator: ReturnType<typeof composeApp>['allocator'];
}

/** The real app on 127.0.0.1 port 0 over a temp LevelDB, with an injected clock. */
export async function startTestServer(
  opts: {
    reuseDelayMs?: number;
    maxKeysPerPod?: number;
    maxTotalKeys?: number;
    store?: Store;
    namespaces?: string[];
    beacon?: { genesisTime: number; genesisValidatorsRoot: string };
    liveness?: BeaconGate;
    resyncWindowMs?: number;
    auth?: Auth;
    rateLimitPerMinute?: number;
    keySource?: KeySource;
  } = {},
): Promise<TestServer> {
  const store = opts.store ?? (await openTempStore());
  const clock = new FakeClock();
  const { app, allocator, proofs } = composeApp({
    store,
    group: new GroupCommitter(store),
    clock: clock.now,
    monotonic: clock.monotonic,
    log: createLogger('silent'),
    ...(opts.beacon ? { beacon: opts.beacon } : {}),
    ...(opts.liveness ? { liveness: opts.liveness } : {}),
    ...(opts.keySource ? { keySource: opts.keySource } : {}),
    ...(opts.auth ? { auth: opts.auth } : {}),
    ...(opts.rateLimitPerMinute ? { rateLimitPerMinute: opts.rateLimitPerMinute } : {}),
    config: {
      reuseDelayMs: opts.reuseDelayMs ?? 20 * MINUTE,
      maxKeysPerPod: opts.maxKeysPerPod ?? 64,
      maxTotalKeys: opts.maxTotalKeys,
      namespaces: opts.namespaces ?? [],
      resyncWindowMs: opts.resyncWindowMs ?? 0,
    },
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
  onCleanup(() => proofs.close());
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, store, clock, allocator };
}

export interface JsonAnswer<T> {
  readonly status: number;
  readonly headers: Headers;
  /** Parsed JSON, typed as the test expects it (the test's assertions check it); text otherwise. */
  readonly body: T;
}

export interface ErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}
export interface AllocationBody {
  readonly pod: string;
  readonly keys: Array<{ pubkey: string; secretKey: string; path?: string }>;
}
export interface AssignmentsBody {
  readonly pods: Record<string, string[]>;
  readonly counts: Record<'free' | 'allocated' | 'cooling' | 'retired' | 'total' | 'pods', number>;
}

export async function http<T = ErrorBody>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<JsonAnswer<T>> {
  const init: RequestInit =
    body === undefined
      ? { method, headers }
      : {
          method,
          body: typeof body === 'string' ? body : JSON.stringify(body),
          headers: { 'content-type': 'application/json', ...headers },
        };
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON (the HTML page, /metrics): the test reads the text.
  }
  const keys: unknown = (parsed as { keys?: unknown } | null)?.keys;
  for (const key of Array.isArray(keys) ? keys : [])
    if (typeof key?.secretKey === 'string') rememberSecret(key.secretKey);
  return { status: res.status, headers: res.headers, body: parsed as T };
}

/** Polls `check` until it holds; fails after `ms`. For conditions another process makes true. */
export async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
