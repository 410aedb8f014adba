import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { GroupCommitter } from '../src/allocation/group-commit.js';
import type { NewKeysPolicy } from '../src/allocation/new-keys.js';
import type { BeaconGate } from '../src/beacon/liveness.js';
import type { ExitChain } from '../src/deposit/exit-chain.js';
import type { KeySource } from '../src/keys/source.js';
import { createLogger } from '../src/log.js';
import type { Auth } from '../src/server/auth.js';
import { composeApp } from '../src/server/root.js';
import { createTlsServer } from '../src/server/tls.js';
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
    /** What voluntary exits are signed over (as --network gives it). */
    exitChain?: ExitChain;
    resyncWindowMs?: number;
    auth?: Auth;
    rateLimitPerMinute?: number;
    keySource?: KeySource;
    /** --new-keys (default always). */
    newKeys?: NewKeysPolicy;
    /** HTTPS with these PEM files, as --tls-cert, --tls-key and --webhook-client-ca. */
    tls?: { cert: string; key: string; clientCa?: string };
  } = {},
): Promise<TestServer> {
  const store = opts.store ?? (await openTempStore());
  const clock = new FakeClock();
  const log = createLogger('silent');
  // The listener, as `pkm server` listens: plain allocations pass express (allocation-shortcut.ts).
  const { listener, allocator, proofs } = composeApp({
    store,
    group: GroupCommitter.of(store),
    clock: clock.now,
    monotonic: clock.monotonic,
    log,
    ...(opts.beacon ? { beacon: opts.beacon } : {}),
    ...(opts.liveness ? { liveness: opts.liveness } : {}),
    ...(opts.exitChain ? { exitChain: opts.exitChain } : {}),
    ...(opts.keySource ? { keySource: opts.keySource } : {}),
    ...(opts.auth ? { auth: opts.auth } : {}),
    ...(opts.rateLimitPerMinute ? { rateLimitPerMinute: opts.rateLimitPerMinute } : {}),
    // As serve.ts wires it: the webhook checks client certificates only when the CA is set.
    ...(opts.tls?.clientCa ? { webhookClientCert: true } : {}),
    config: {
      reuseDelayMs: opts.reuseDelayMs ?? 20 * MINUTE,
      maxKeysPerPod: opts.maxKeysPerPod ?? 64,
      maxTotalKeys: opts.maxTotalKeys,
      namespaces: opts.namespaces ?? [],
      resyncWindowMs: opts.resyncWindowMs ?? 0,
      ...(opts.newKeys ? { newKeys: opts.newKeys } : {}),
    },
  });
  const tls = opts.tls
    ? await createTlsServer(
        { certFile: opts.tls.cert, keyFile: opts.tls.key, clientCaFile: opts.tls.clientCa },
        listener,
        log,
      )
    : undefined;
  const server: Server = tls?.server ?? createServer(listener);
  // As `pkm server` does (root.ts): a group waits while new connections keep coming.
  GroupCommitter.of(store).followConnections(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  onCleanup(async () => {
    tls?.stop();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  onCleanup(() => proofs.close());
  const { port } = server.address() as AddressInfo;
  const scheme = tls ? 'https' : 'http';
  return { url: `${scheme}://127.0.0.1:${port}`, store, clock, allocator };
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
  return { status: res.status, headers: res.headers, body: parseAnswer<T>(await res.text()) };
}

/** JSON when it is JSON (else the text: the HTML page, /metrics); secrets it carries noted. */
function parseAnswer<T>(text: string): T {
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: the test reads the text.
  }
  const keys: unknown = (parsed as { keys?: unknown } | null)?.keys;
  for (const key of Array.isArray(keys) ? keys : [])
    if (typeof key?.secretKey === 'string') rememberSecret(key.secretKey);
  return parsed as T;
}

/** What a TLS client trusts (the server's CA) and the client certificate it shows, if any. */
export interface TlsClient {
  readonly ca: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** Reads a client's PEM files: the CA to trust, and optionally a certificate and its key. */
export async function tlsClient(ca: string, client?: { cert: string; key: string }) {
  const trust = await readFile(ca);
  if (!client) return { ca: trust } satisfies TlsClient;
  return {
    ca: trust,
    cert: await readFile(client.cert),
    key: await readFile(client.key),
  } satisfies TlsClient;
}

/**
 * http() over HTTPS with a client certificate (fetch takes none). Each request opens its own
 * connection (no agent), so one request's certificate never carries over to the next.
 */
export function https<T = ErrorBody>(
  base: string,
  method: string,
  path: string,
  tls: TlsClient,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<JsonAnswer<T>> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const sent = payload === undefined ? headers : { 'content-type': 'application/json', ...headers };
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${base}${path}`,
      { method, agent: false, headers: sent, ...tls },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const answer = new Headers();
          for (const [name, value] of Object.entries(res.headers))
            if (typeof value === 'string') answer.set(name, value);
          resolve({
            status: res.statusCode ?? 0,
            headers: answer,
            body: parseAnswer<T>(Buffer.concat(chunks).toString('utf8')),
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Polls `check` until it holds; fails after `ms`. For conditions another process makes true. */
export async function until(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
