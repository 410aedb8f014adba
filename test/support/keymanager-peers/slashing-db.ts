// A fake's slashing-protection database (EIP-3076, interchange format version 5): every block
// and attestation a key signed or was imported with. Nothing ever removes a key's history
// (flows/README.md, Delete notes: "The keymanager must never delete the slashing protection
// data for a key"), so a key deleted and imported again keeps it, and an import merges into it.
import { Interchange } from '../../../src/api/interchange.js';

// Type aliases, not interfaces: they fit the Interchange schema's passthrough index signature.
export type SignedBlock = { readonly slot: string; readonly signing_root?: string };
export type SignedAttestation = {
  readonly source_epoch: string;
  readonly target_epoch: string;
  readonly signing_root?: string;
};
export type History = {
  readonly signed_blocks: SignedBlock[];
  readonly signed_attestations: SignedAttestation[];
};
export type SlashingRecords = Record<string, History>;

const big = (s: string) => BigInt(s);
const maxOf = (values: readonly string[]) =>
  values.reduce<bigint | undefined>(
    (m, v) => (m === undefined || big(v) > m ? big(v) : m),
    undefined,
  );

/** Thrown for an interchange that cannot be read (flows/README.md Import 3: a 400). */
export class BadInterchange extends Error {}

export class SlashingDb {
  private readonly records: Map<string, History>;

  constructor(readonly genesisValidatorsRoot: string) {
    this.records = new Map();
  }

  /** Loads the records a data dir kept (on start). */
  restore(saved: SlashingRecords): void {
    for (const [k, h] of Object.entries(saved)) this.records.set(k, structuredClone(h));
  }

  /** Whether the key has any signed block or attestation on record. */
  hasHistory(pubkey: string): boolean {
    const h = this.records.get(pubkey);
    return h !== undefined && h.signed_blocks.length + h.signed_attestations.length > 0;
  }

  /** Reads an interchange (the Keymanager API sends it as a JSON string); throws BadInterchange. */
  parse(text: string): Interchange {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new BadInterchange('slashing_protection is not JSON');
    }
    const parsed = Interchange.safeParse(json);
    if (!parsed.success) throw new BadInterchange(`slashing_protection: ${parsed.error.message}`);
    const root = parsed.data.metadata.genesis_validators_root.toLowerCase();
    if (root !== this.genesisValidatorsRoot.toLowerCase())
      throw new BadInterchange(
        'slashing_protection is for another chain (genesis_validators_root)',
      );
    return parsed.data;
  }

  /** Adds the interchange's entries for `pubkey` to its history (a union: nothing is lost). */
  mergeFor(pubkey: string, interchange: Interchange): void {
    const h = this.entry(pubkey);
    for (const e of interchange.data) {
      if (e.pubkey.toLowerCase() !== pubkey) continue;
      for (const b of e.signed_blocks)
        h.signed_blocks.push({
          slot: b.slot,
          ...(b.signing_root ? { signing_root: b.signing_root } : {}),
        });
      for (const a of e.signed_attestations)
        h.signed_attestations.push({
          source_epoch: a.source_epoch,
          target_epoch: a.target_epoch,
          ...(a.signing_root ? { signing_root: a.signing_root } : {}),
        });
    }
  }

  /**
   * Records an attestation before it is signed, as validator clients do; refuses one that the
   * history forbids (EIP-3076's conditions in their strict form: a target above every target
   * on record, a source at or above every source, and source <= target). Returns the reason for
   * a refusal, undefined when recorded.
   */
  recordAttestation(
    pubkey: string,
    source: number,
    target: number,
    root: string,
  ): string | undefined {
    if (source > target) return 'source above target';
    const h = this.entry(pubkey);
    const maxTarget = maxOf(h.signed_attestations.map((a) => a.target_epoch));
    const maxSource = maxOf(h.signed_attestations.map((a) => a.source_epoch));
    if (maxTarget !== undefined && BigInt(target) <= maxTarget)
      return `target ${target} is not above ${maxTarget}`;
    if (maxSource !== undefined && BigInt(source) < maxSource)
      return `source ${source} is below ${maxSource}`;
    h.signed_attestations.push({
      source_epoch: String(source),
      target_epoch: String(target),
      signing_root: root,
    });
    return undefined;
  }

  /** The interchange for `pubkeys` (each at most once; keys never seen are left out). */
  export(pubkeys: Iterable<string>): Interchange {
    const data = [...new Set(pubkeys)].flatMap((pubkey) => {
      const h = this.records.get(pubkey);
      return h === undefined ? [] : [{ pubkey, ...structuredClone(h) }];
    });
    return {
      metadata: {
        interchange_format_version: '5',
        genesis_validators_root: this.genesisValidatorsRoot,
      },
      data,
    };
  }

  /** Registers a key with no history yet (on import), so its delete exports an entry. */
  register(pubkey: string): void {
    this.entry(pubkey);
  }

  toJSON(): SlashingRecords {
    return Object.fromEntries(this.records);
  }

  private entry(pubkey: string): History {
    let h = this.records.get(pubkey);
    if (h === undefined) {
      h = { signed_blocks: [], signed_attestations: [] };
      this.records.set(pubkey, h);
    }
    return h;
  }
}
