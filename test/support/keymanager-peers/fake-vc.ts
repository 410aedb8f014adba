// A fake validator client with its Keymanager API on (keymanager-oapi.yaml): local keystores,
// remote keys, per-key fee recipient / graffiti / gas limit, behind a bearer token kept in a
// token file. Its state lives in its data dir, so a restart (or a child killed with kill -9 and
// started again on the same dir) comes back with its keys, as a real client does. Besides the
// spec's routes it serves two of its own for tests, under the same token:
//   POST /fake/v1/attest {"epoch"?: n}  one attestation step now (AttestReport)
//   GET  /fake/v1/holdings              {"local": [pubkey…], "remote": [{pubkey, url}…]}
import { join } from 'node:path';
import { z } from 'zod';
import type { Holdings } from './answers.js';
import { type ChainClock, epochAt } from './attestation.js';
import { type Listening, listen, loadOrMakeToken, type Route } from './http.js';
import { LocalKeys, parseBody } from './local-keys.js';
import { Lock } from './lock.js';
import type { FakeVcOptions } from './options.js';
import { RemoteKeys } from './remote-keys.js';
import { SlashingDb } from './slashing-db.js';
import { loadState, saveState, slashingOf } from './state-file.js';
import { type Defaults, Settings } from './vc-settings.js';
import { type AttestReport, attest } from './vc-signing.js';
import { Witness } from './witness.js';

export type { FakeVcOptions } from './options.js';

/** The fixture's chain (test/support/keymanager-fixture.ts ROOT and GENESIS). */
export const FAKE_ROOT = `0x${'ab'.repeat(32)}`;
export const FAKE_GENESIS = Date.UTC(2020, 11, 1) / 1000;

export type { Holdings } from './answers.js';

const AttestBody = z.object({ epoch: z.number().int().nonnegative().optional() }).optional();

export class FakeVc {
  readonly role = 'vc';
  readonly lock = new Lock();
  readonly witness: Witness;
  readonly slashing: SlashingDb;
  readonly local = new LocalKeys(this);
  readonly remote = new RemoteKeys(this);
  readonly settings = new Settings(this);
  readonly clock: ChainClock;
  readonly defaults: Defaults;
  private http: Listening | undefined;
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    readonly opts: FakeVcOptions,
    readonly token: string,
  ) {
    this.witness = new Witness(opts.witnessFile);
    this.slashing = new SlashingDb(this.genesisValidatorsRoot);
    this.clock = { genesisTime: opts.genesisTime ?? FAKE_GENESIS, slotMs: opts.slotMs ?? 12_000 };
    this.defaults = {
      feeRecipient: opts.defaults?.feeRecipient ?? `0x${'ee'.repeat(20)}`,
      graffiti: opts.defaults?.graffiti ?? '',
      gasLimit: opts.defaults?.gasLimit ?? '30000000',
    };
  }

  static async start(opts: FakeVcOptions): Promise<FakeVc> {
    const tokenFile = opts.tokenFile ?? join(opts.dataDir, 'api-token.txt');
    const vc = new FakeVc(opts, await loadOrMakeToken(tokenFile));
    const saved = await loadState(opts.dataDir);
    vc.slashing.restore(slashingOf(saved));
    await vc.local.restore(saved.local);
    vc.remote.restore(saved.remote);
    vc.settings.restore(saved.settings);
    const held = vc.holdings();
    vc.witness.record({ kind: 'snapshot', peer: opts.name, role: 'vc', ...held });
    vc.http = await listen(vc.routes(), vc.token, opts.port);
    vc.witness.record({ kind: 'listening', peer: opts.name, role: 'vc', url: vc.url });
    if (opts.attestEveryMs !== undefined)
      vc.timer = setInterval(() => void vc.attest().catch(() => undefined), opts.attestEveryMs);
    return vc;
  }

  get name(): string {
    return this.opts.name;
  }
  get url(): string {
    if (this.http === undefined) throw new Error('the fake VC is not listening');
    return this.http.url;
  }
  get tokenFile(): string {
    return this.opts.tokenFile ?? join(this.opts.dataDir, 'api-token.txt');
  }
  get genesisValidatorsRoot(): string {
    return this.opts.genesisValidatorsRoot ?? FAKE_ROOT;
  }
  get stepDelayMs(): number {
    return this.opts.stepDelayMs ?? 0;
  }
  get emptyDeleteProtection() {
    return this.opts.emptyDeleteProtection;
  }
  get defaultSignerUrl() {
    return this.opts.defaultSignerUrl;
  }

  isLocal = (pubkey: string) => this.local.has(pubkey);
  isRemote = (pubkey: string) => this.remote.has(pubkey);
  isManaged = (pubkey: string) => this.isLocal(pubkey) || this.isRemote(pubkey);
  removed = (pubkey: string) => this.settings.drop(pubkey);

  async persist(): Promise<void> {
    await saveState(this.opts.dataDir, {
      local: this.local.saved(),
      remote: this.remote.saved(),
      settings: this.settings.saved(),
      slashing: this.slashing.toJSON(),
    });
  }

  holdings(): Holdings {
    return { local: this.local.saved().map((s) => s.pubkey), remote: this.remote.saved() };
  }

  /** One attestation step at `epoch` (default: the clock's), under the VC's lock. */
  attest(epoch?: number): Promise<AttestReport> {
    return this.lock.run(() => attest(this, epoch ?? epochAt(this.clock)));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.lock.run(async () => undefined); // let a running change finish
    await this.http?.close();
  }

  private routes(): Route[] {
    const locked =
      (fn: (body: unknown) => Promise<{ status: number; body: unknown }>): Route['handle'] =>
      ({ body }) =>
        this.lock.run(() => fn(body));
    const KEYSTORES = /^\/eth\/v1\/keystores$/;
    const REMOTEKEYS = /^\/eth\/v1\/remotekeys$/;
    return [
      { method: 'GET', path: KEYSTORES, auth: true, handle: async () => this.local.list() },
      { method: 'POST', path: KEYSTORES, auth: true, handle: locked((b) => this.local.import(b)) },
      {
        method: 'DELETE',
        path: KEYSTORES,
        auth: true,
        handle: locked((b) => this.local.delete(b)),
      },
      { method: 'GET', path: REMOTEKEYS, auth: true, handle: async () => this.remote.list() },
      {
        method: 'POST',
        path: REMOTEKEYS,
        auth: true,
        handle: locked((b) => this.remote.import(b)),
      },
      {
        method: 'DELETE',
        path: REMOTEKEYS,
        auth: true,
        handle: locked((b) => this.remote.delete(b)),
      },
      ...this.settings.routes(),
      {
        method: 'POST',
        path: /^\/fake\/v1\/attest$/,
        auth: true,
        handle: async ({ body }) => ({
          status: 200,
          body: await this.attest(parseBody(AttestBody, body)?.epoch),
        }),
      },
      {
        method: 'GET',
        path: /^\/fake\/v1\/holdings$/,
        auth: true,
        handle: async () => ({ status: 200, body: this.holdings() }),
      },
    ];
  }
}

export const startFakeVc = (opts: FakeVcOptions) => FakeVc.start(opts);
