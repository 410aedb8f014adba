// A validator client's remote keys (apis/remote_keystores.yaml): pubkeys it does duties for,
// each signed through the EIP-3030 signer at its `url`. The registration alone signs nothing;
// the witness counts a VC as able to sign while the signer at that URL also holds the key.
// The spec lists no 400 for these routes: a body of the wrong shape is still a 400 (as clients
// do), and a bad item gets an `error` status of its own.
import { z } from 'zod';
import { parseBody } from './local-keys.js';
import { sleep } from './lock.js';
import { normaliseUrl, type Witness } from './witness.js';

const PUBKEY = /^0x[0-9a-fA-F]{96}$/;
const ImportBody = z.object({
  remote_keys: z.array(z.object({ pubkey: z.string(), url: z.string().optional() })),
});
const DeleteBody = z.object({ pubkeys: z.array(z.string()) });

export interface RemoteOwner {
  readonly name: string;
  readonly witness: Witness;
  readonly stepDelayMs: number;
  /** The signer URL of a remote key imported without one (a client's --web3signer-url). */
  readonly defaultSignerUrl: string | undefined;
  persist(): Promise<void>;
  isLocal(pubkey: string): boolean;
  removed(pubkey: string): void;
}

type Status = { status: string; message?: string };

export class RemoteKeys {
  private readonly keys = new Map<string, string>(); // pubkey -> signer URL

  constructor(private readonly owner: RemoteOwner) {}

  restore(saved: ReadonlyArray<{ pubkey: string; url: string }>): void {
    for (const r of saved) this.keys.set(r.pubkey, r.url);
  }

  has(pubkey: string): boolean {
    return this.keys.has(pubkey);
  }

  saved(): Array<{ pubkey: string; url: string }> {
    return [...this.keys].map(([pubkey, url]) => ({ pubkey, url }));
  }

  list() {
    return { status: 200, body: { data: this.saved().map((r) => ({ ...r, readonly: false })) } };
  }

  async import(body: unknown) {
    const req = parseBody(ImportBody, body);
    const data: Status[] = [];
    for (const item of req.remote_keys) data.push(await this.importOne(item.pubkey, item.url));
    return { status: 200, body: { data } };
  }

  private async importOne(given: string, url: string | undefined): Promise<Status> {
    const { owner } = this;
    if (!PUBKEY.test(given)) return { status: 'error', message: 'not a 0x pubkey of 48 bytes' };
    const pubkey = given.toLowerCase();
    const target = url ?? owner.defaultSignerUrl;
    if (target === undefined || !URL.canParse(target))
      return { status: 'error', message: 'no signer URL (url is missing or not a URL)' };
    if (this.keys.has(pubkey) || owner.isLocal(pubkey)) return { status: 'duplicate' };
    const signer = normaliseUrl(target);
    owner.witness.record({ kind: 'remote-hold', peer: owner.name, pubkey, url: signer });
    this.keys.set(pubkey, signer);
    try {
      await owner.persist();
    } catch (err) {
      this.keys.delete(pubkey);
      owner.witness.record({ kind: 'remote-release', peer: owner.name, pubkey, url: signer });
      return { status: 'error', message: `cannot store the remote key: ${String(err)}` };
    }
    await sleep(owner.stepDelayMs);
    return { status: 'imported' };
  }

  async delete(body: unknown) {
    const { owner } = this;
    const data: Status[] = [];
    for (const given of parseBody(DeleteBody, body).pubkeys) {
      const pubkey = given.toLowerCase();
      const url = this.keys.get(pubkey);
      if (url !== undefined) {
        this.keys.delete(pubkey);
        try {
          await owner.persist();
        } catch (err) {
          data.push({ status: 'error', message: `cannot remove the remote key: ${String(err)}` });
          continue;
        }
        owner.witness.record({ kind: 'remote-release', peer: owner.name, pubkey, url });
        owner.removed(pubkey);
        data.push({ status: 'deleted' });
        await sleep(owner.stepDelayMs);
      } else if (owner.isLocal(pubkey)) {
        data.push({ status: 'error', message: 'a local key: DELETE /eth/v1/keystores removes it' });
      } else data.push({ status: 'not_found' });
    }
    return { status: 200, body: { data } };
  }
}
