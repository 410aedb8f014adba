// Where a pod's keys live, for `pkm agent --keymanager-url` (issue 16, points 1 and 4):
//   - local: in the validator client itself, as keystores (POST/DELETE /eth/v1/keystores);
//   - remote: in a remote signer (Web3Signer) through its own Keymanager API, registered with
//     the validator client as remote keys (POST/DELETE /eth/v1/remotekeys). A key leaves the
//     VC first (it stops asking the signer), then the signer, whose DELETE returns the slashing
//     protection; a key the VC could not unregister stays in the signer.
// Both answer the same questions, so the agent's protocol is one (keymanager-agent.ts).
import type { KeymanagerClient, RemovalStatus } from './keymanager-client.js';

export interface ImportBatch {
  readonly pubkeys: readonly string[];
  readonly keystores: string[];
  readonly passwords: string[];
  /** One EIP-3076 interchange (JSON text) for the batch's keys, if the server gave any. */
  readonly slashingProtection?: string;
}

export interface Removal {
  /** One status per pubkey asked, as DELETE /eth/v1/keystores answers them. */
  readonly statuses: ReadonlyMap<string, RemovalStatus>;
  /** The slashing protection that came back (JSON text, as it came); none if nothing was asked. */
  readonly slashingProtection: string | undefined;
}

export interface KeyHome {
  /** Every key that may sign through this pod: what its heartbeat reports. */
  signing(): Promise<string[]>;
  /** Keys whose secret is stored here: the server sends no secret for them. */
  stored(): Promise<Set<string>>;
  /** Imports keystores; true for each key now stored (imported, or there already). */
  import(batch: ImportBatch): Promise<Map<string, boolean>>;
  /** Makes every stored key of `pubkeys` able to sign (remote: registered with the VC). */
  link(pubkeys: readonly string[]): Promise<void>;
  /** Takes keys out; each gets the status of the delete that holds its slashing protection. */
  remove(pubkeys: readonly string[]): Promise<Removal>;
}

/** Keys as keystores in the validator client. */
export class LocalKeys implements KeyHome {
  constructor(private readonly vc: KeymanagerClient) {}

  signing(): Promise<string[]> {
    return this.vc.keystores();
  }

  async stored(): Promise<Set<string>> {
    return new Set(await this.vc.keystores());
  }

  async import(batch: ImportBatch): Promise<Map<string, boolean>> {
    const statuses = await this.vc.importKeystores({
      keystores: batch.keystores,
      passwords: batch.passwords,
      ...(batch.slashingProtection === undefined
        ? {}
        : { slashing_protection: batch.slashingProtection }),
    });
    return new Map(batch.pubkeys.map((pk, i) => [pk, statuses[i] !== 'error']));
  }

  async link(): Promise<void> {}

  async remove(pubkeys: readonly string[]): Promise<Removal> {
    const { statuses, slashingProtection } = await this.vc.deleteKeystores(pubkeys);
    return {
      statuses: new Map(pubkeys.map((pk, i) => [pk, statuses[i] ?? 'error'])),
      slashingProtection,
    };
  }
}

/** Keys in a remote signer, registered with the validator client as remote keys. */
export class RemoteKeys implements KeyHome {
  constructor(
    private readonly vc: KeymanagerClient,
    private readonly signer: KeymanagerClient,
    /** The signer's URL as the VC reaches it (ImportRemoteSignerDefinition.url). */
    private readonly signerUrl: string,
  ) {}

  async signing(): Promise<string[]> {
    const [stored, registered] = await Promise.all([this.signer.keystores(), this.vc.remoteKeys()]);
    return [...new Set([...stored, ...registered.map((k) => k.pubkey)])];
  }

  async stored(): Promise<Set<string>> {
    return new Set(await this.signer.keystores());
  }

  async import(batch: ImportBatch): Promise<Map<string, boolean>> {
    const statuses = await this.signer.importKeystores({
      keystores: batch.keystores,
      passwords: batch.passwords,
      ...(batch.slashingProtection === undefined
        ? {}
        : { slashing_protection: batch.slashingProtection }),
    });
    return new Map(batch.pubkeys.map((pk, i) => [pk, statuses[i] !== 'error']));
  }

  /** Registers with the VC each stored key it does not know yet, at this signer's URL. */
  async link(pubkeys: readonly string[]): Promise<void> {
    const [stored, registered] = await Promise.all([this.stored(), this.vc.remoteKeys()]);
    const known = new Set(registered.map((k) => k.pubkey));
    const missing = pubkeys.filter((pk) => stored.has(pk) && !known.has(pk));
    if (missing.length > 0)
      await this.vc.importRemoteKeys(missing.map((pubkey) => ({ pubkey, url: this.signerUrl })));
  }

  async remove(pubkeys: readonly string[]): Promise<Removal> {
    // The VC first: once it no longer asks the signer, the signer's delete ends the key here.
    const unregistered = await this.vc.deleteRemoteKeys(pubkeys);
    const free = pubkeys.filter((_, i) => unregistered[i] !== 'error');
    const statuses = new Map<string, RemovalStatus>(pubkeys.map((pk) => [pk, 'error']));
    if (free.length === 0) return { statuses, slashingProtection: undefined };
    const removed = await this.signer.deleteKeystores(free);
    for (const [i, pk] of free.entries()) statuses.set(pk, removed.statuses[i] ?? 'error');
    return { statuses, slashingProtection: removed.slashingProtection };
  }
}
