// EIP-3076 interchange files (format version 5) as validator clients export them, for tests:
// one block at `slot` and one attestation (source 1, target 2) per key.

export function interchangeFor(root: string, pubkeys: readonly string[], slot = 64) {
  return {
    metadata: { interchange_format_version: '5', genesis_validators_root: root },
    data: pubkeys.map((pubkey) => ({
      pubkey,
      signed_blocks: [{ slot: String(slot) }],
      signed_attestations: [{ source_epoch: '1', target_epoch: '2' }],
    })),
  };
}
