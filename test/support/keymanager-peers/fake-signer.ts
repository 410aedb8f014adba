// A fake Web3Signer: its Keymanager API for local keystores (GET/POST/DELETE /eth/v1/keystores,
// the same behaviour as the fake VC's), and its EIP-3030 signing route, which signs only with a
// key it holds (404 otherwise, as Web3Signer answers an unknown identifier) and, as Web3Signer
// does with its slashing database on, refuses what the key's history forbids (412).
// Web3Signer's key manager API takes no token: auth is off unless `tokenFile` is given.
//   POST /api/v1/eth2/sign/{pubkey} {"type":"ATTESTATION","signingRoot":"0x…",
//        "attestation":{"source":{"epoch":"n"},"target":{"epoch":"n"}}}
//        -> {"signature":"0x…"} with Accept: application/json, else the signature as text
//   GET  /api/v1/eth2/publicKeys, GET /upcheck
import { z } from 'zod';
import { bls } from '../../../src/keys/bls-backend.js';
import { hex } from './attestation.js';
import { FAKE_ROOT } from './fake-vc.js';
import { HttpError, type Listening, listen, loadOrMakeToken, type Route } from './http.js';
import { LocalKeys, parseBody } from './local-keys.js';
import { Lock } from './lock.js';
import type { FakeSignerOptions } from './options.js';
import { SlashingDb } from './slashing-db.js';
import { loadState, saveState, slashingOf } from './state-file.js';
import { Witness } from './witness.js';

export type { FakeSignerOptions } from './options.js';

const Epoch = z.object({ epoch: z.string().regex(/^\d+$/) });
const SignBody = z.object({
  type: z.string(),
  signingRoot: z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'signingRoot: 0x and 32 bytes'),
  attestation: z.object({ source: Epoch, target: Epoch }).optional(),
});

export class FakeSigner {
  readonly role = 'signer';
  readonly lock = new Lock();
  readonly witness: Witness;
  readonly slashing: SlashingDb;
  readonly local = new LocalKeys(this);
  private http: Listening | undefined;

  private constructor(
    readonly opts: FakeSignerOptions,
    readonly token: string | undefined,
  ) {
    this.witness = new Witness(opts.witnessFile);
    this.slashing = new SlashingDb(opts.genesisValidatorsRoot ?? FAKE_ROOT);
  }

  static async start(opts: FakeSignerOptions): Promise<FakeSigner> {
    const token = opts.tokenFile === undefined ? undefined : await loadOrMakeToken(opts.tokenFile);
    const s = new FakeSigner(opts, token);
    const saved = await loadState(opts.dataDir);
    s.slashing.restore(slashingOf(saved));
    await s.local.restore(saved.local);
    const local = s.holdings();
    s.witness.record({ kind: 'snapshot', peer: opts.name, role: 'signer', local, remote: [] });
    s.http = await listen(s.routes(), token, opts.port);
    s.witness.record({ kind: 'listening', peer: opts.name, role: 'signer', url: s.url });
    return s;
  }

  get name(): string {
    return this.opts.name;
  }
  get url(): string {
    if (this.http === undefined) throw new Error('the fake signer is not listening');
    return this.http.url;
  }
  get stepDelayMs(): number {
    return this.opts.stepDelayMs ?? 0;
  }
  get emptyDeleteProtection() {
    return this.opts.emptyDeleteProtection;
  }
  isRemote = () => false;
  removed = () => undefined;

  async persist(): Promise<void> {
    const local = this.local.saved();
    await saveState(this.opts.dataDir, {
      local,
      remote: [],
      settings: {},
      slashing: this.slashing.toJSON(),
    });
  }

  holdings(): string[] {
    return this.local.saved().map((s) => s.pubkey);
  }

  async stop(): Promise<void> {
    await this.lock.run(async () => undefined);
    await this.http?.close();
  }

  /** EIP-3030 sign: only a held key, only what its history allows, recorded before signing. */
  private async sign(identifier: string | undefined, body: unknown, accept: string) {
    const req = parseBody(SignBody, body);
    if (req.type !== 'ATTESTATION' || req.attestation === undefined)
      throw new HttpError(400, 'this fake signs attestations only');
    const pubkey = (identifier ?? '').toLowerCase();
    const secret = this.local.signers().find(([k]) => k === pubkey)?.[1];
    if (secret === undefined) throw new HttpError(404, 'Public Key not found');
    const source = Number(req.attestation.source.epoch);
    const target = Number(req.attestation.target.epoch);
    const refused = this.slashing.recordAttestation(pubkey, source, target, req.signingRoot);
    if (refused !== undefined) throw new HttpError(412, `slashing protection: ${refused}`);
    await this.persist();
    const signature = hex(bls.sign(secret, Buffer.from(req.signingRoot.slice(2), 'hex')));
    this.witness.record({ kind: 'signed', peer: this.name, pubkey, target, root: req.signingRoot });
    return accept.includes('application/json')
      ? { status: 200, body: { signature } }
      : { status: 200, text: signature };
  }

  private routes(): Route[] {
    const KEYSTORES = /^\/eth\/v1\/keystores$/;
    return [
      { method: 'GET', path: KEYSTORES, auth: true, handle: async () => this.local.list() },
      {
        method: 'POST',
        path: KEYSTORES,
        auth: true,
        handle: ({ body }) => this.lock.run(() => this.local.import(body)),
      },
      {
        method: 'DELETE',
        path: KEYSTORES,
        auth: true,
        handle: ({ body }) => this.lock.run(() => this.local.delete(body)),
      },
      {
        method: 'POST',
        path: /^\/api\/v1\/eth2\/sign\/([^/]+)$/,
        auth: false,
        handle: ({ params, body, accept }) =>
          this.lock.run(() => this.sign(params[0], body, accept)),
      },
      {
        method: 'GET',
        path: /^\/api\/v1\/eth2\/publicKeys$/,
        auth: false,
        handle: async () => ({ status: 200, body: this.holdings() }),
      },
      {
        method: 'GET',
        path: /^\/upcheck$/,
        auth: false,
        handle: async () => ({ status: 200, text: 'OK' }),
      },
    ];
  }
}

export const startFakeSigner = (opts: FakeSignerOptions) => FakeSigner.start(opts);
