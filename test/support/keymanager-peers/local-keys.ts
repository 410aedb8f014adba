// Local keystores as a validator client or Web3Signer keeps them, behind GET/POST/DELETE
// /eth/v1/keystores (apis/local_keystores.yaml, flows/README.md). Keystores are really
// decrypted (EIP-2335, @chainsafe/bls-keystore) and the key is what the secret gives, never
// what the file claims. Each step is witnessed in the order that keeps the witness's intervals
// around the real ones: hold, write, load on import; unload, write, release on delete.
import { Keystore } from '@chainsafe/bls-keystore';
import { z } from 'zod';
import { publicKeyOf } from '../../../src/keys/bls.js';
import { HttpError } from './http.js';
import { sleep } from './lock.js';
import { BadInterchange, type SlashingDb } from './slashing-db.js';
import type { Witness } from './witness.js';

const PUBKEY = /^0x[0-9a-fA-F]{96}$/;
const ImportBody = z.object({
  keystores: z.array(z.string()),
  passwords: z.array(z.string()),
  slashing_protection: z.string().optional(),
});
export const PubkeysBody = z.object({ pubkeys: z.array(z.string().regex(PUBKEY)) });

/** A body the schema refuses is a 400 (flows/README.md, Import 1 and Delete 1). */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) throw new HttpError(400, `bad request: ${r.error.issues[0]?.message ?? ''}`);
  return r.data;
}

/** What LocalKeys needs from the fake that owns it. */
export interface KeyOwner {
  readonly name: string;
  readonly role: 'vc' | 'signer';
  readonly witness: Witness;
  readonly slashing: SlashingDb;
  /** A pause after each key's step, to widen the windows a kill -9 can hit. */
  readonly stepDelayMs: number;
  /** Mimics Prysm #17408: a DELETE answers an empty slashing protection. */
  readonly emptyDeleteProtection: 'no-entries' | 'empty-history' | undefined;
  persist(): Promise<void>;
  /** Whether the key is a remote key of this VC (then not importable, not deletable here). */
  isRemote(pubkey: string): boolean;
  /** The key left: drop what belongs to it (a VC's per-key settings, as Lighthouse #5402). */
  removed(pubkey: string): void;
}

interface Held {
  readonly keystore: string;
  readonly password: string;
  readonly secret: Uint8Array;
  readonly path: string;
}

type Status = { status: string; message?: string };

async function open(
  text: string,
  password: string,
): Promise<Omit<Held, 'keystore' | 'password'> & { pubkey: string }> {
  const ks = Keystore.parse(text);
  const secret = await ks.decrypt(password);
  const pubkey = publicKeyOf(secret);
  const claimed = ks.pubkey.replace(/^0x/i, '').toLowerCase();
  if (claimed !== '' && `0x${claimed}` !== pubkey)
    throw new Error('the keystore’s pubkey is not its secret’s');
  return { secret, pubkey, path: ks.path };
}

export class LocalKeys {
  private readonly held = new Map<string, Held>();

  constructor(private readonly owner: KeyOwner) {}

  /** Loads saved keystores on start (a restart of the client). */
  async restore(saved: ReadonlyArray<{ keystore: string; password: string }>): Promise<void> {
    for (const s of saved) {
      const o = await open(s.keystore, s.password);
      this.held.set(o.pubkey, {
        keystore: s.keystore,
        password: s.password,
        secret: o.secret,
        path: o.path,
      });
    }
  }

  has(pubkey: string): boolean {
    return this.held.has(pubkey);
  }

  /** The keys it can sign with now, and their secrets. */
  signers(): Array<[string, Uint8Array]> {
    return [...this.held].map(([k, h]) => [k, h.secret]);
  }

  saved(): Array<{ pubkey: string; keystore: string; password: string }> {
    return [...this.held].map(([pubkey, h]) => ({
      pubkey,
      keystore: h.keystore,
      password: h.password,
    }));
  }

  list() {
    const data = [...this.held].map(([pubkey, h]) => ({
      validating_pubkey: pubkey,
      ...(h.path === '' ? {} : { derivation_path: h.path }),
      readonly: false,
    }));
    return { status: 200, body: { data } };
  }

  async import(body: unknown) {
    const req = parseBody(ImportBody, body);
    if (req.keystores.length !== req.passwords.length)
      throw new HttpError(400, 'keystores and passwords differ in length');
    let interchange: ReturnType<SlashingDb['parse']> | undefined;
    try {
      if (req.slashing_protection !== undefined)
        interchange = this.owner.slashing.parse(req.slashing_protection);
    } catch (err) {
      if (err instanceof BadInterchange) throw new HttpError(400, err.message);
      throw err;
    }
    const data: Status[] = [];
    for (const [i, text] of req.keystores.entries())
      data.push(await this.importOne(text, req.passwords[i] ?? '', interchange));
    return { status: 200, body: { data } };
  }

  private async importOne(
    text: string,
    password: string,
    interchange: ReturnType<SlashingDb['parse']> | undefined,
  ): Promise<Status> {
    let o: Awaited<ReturnType<typeof open>>;
    try {
      o = await open(text, password);
    } catch (err) {
      return {
        status: 'error',
        message: `cannot open the keystore: ${err instanceof Error ? err.message : err}`,
      };
    }
    const { owner } = this;
    if (this.held.has(o.pubkey) || owner.isRemote(o.pubkey)) return { status: 'duplicate' };
    if (interchange !== undefined) owner.slashing.mergeFor(o.pubkey, interchange);
    owner.slashing.register(o.pubkey);
    owner.witness.record({ kind: 'hold', peer: owner.name, role: owner.role, pubkey: o.pubkey });
    this.held.set(o.pubkey, { keystore: text, password, secret: o.secret, path: o.path });
    try {
      await owner.persist();
    } catch (err) {
      this.held.delete(o.pubkey);
      owner.witness.record({
        kind: 'release',
        peer: owner.name,
        role: owner.role,
        pubkey: o.pubkey,
      });
      return { status: 'error', message: `cannot store the keystore: ${String(err)}` };
    }
    await sleep(owner.stepDelayMs);
    return { status: 'imported' };
  }

  async delete(body: unknown) {
    const pubkeys = parseBody(PubkeysBody, body).pubkeys.map((p) => p.toLowerCase());
    const { owner } = this;
    const provisional: Status[] = [];
    for (const pubkey of pubkeys) {
      if (this.held.delete(pubkey)) {
        // Out of memory first: from here the key signs nothing (the step takes the same lock).
        try {
          await owner.persist();
        } catch (err) {
          // Still on disk, so a restart would load it: an error, and the witness keeps it held.
          provisional.push({
            status: 'error',
            message: `cannot remove the keystore: ${String(err)}`,
          });
          continue;
        }
        owner.witness.record({ kind: 'release', peer: owner.name, role: owner.role, pubkey });
        owner.removed(pubkey);
        provisional.push({ status: 'deleted' });
        await sleep(owner.stepDelayMs);
      } else if (owner.isRemote(pubkey)) {
        provisional.push({
          status: 'error',
          message: 'a remote key: DELETE /eth/v1/remotekeys removes it',
        });
      } else provisional.push({ status: 'not_found' });
    }
    // flows/README.md, Delete 3: not_found with history becomes not_active; protection only
    // for deleted and not_active keys, and it stays in the database.
    const data = provisional.map((s, i) =>
      s.status === 'not_found' && owner.slashing.hasHistory(pubkeys[i] ?? '')
        ? { status: 'not_active' }
        : s,
    );
    const exported = pubkeys.filter((_, i) =>
      ['deleted', 'not_active'].includes(data[i]?.status ?? ''),
    );
    return {
      status: 200,
      body: { data, slashing_protection: JSON.stringify(this.protection(exported)) },
    };
  }

  private protection(pubkeys: string[]) {
    const ic = this.owner.slashing.export(pubkeys);
    switch (this.owner.emptyDeleteProtection) {
      case 'no-entries':
        return { ...ic, data: [] };
      case 'empty-history':
        return {
          ...ic,
          data: ic.data.map((e) => ({
            pubkey: e.pubkey,
            signed_blocks: [],
            signed_attestations: [],
          })),
        };
      default:
        return ic;
    }
  }
}
