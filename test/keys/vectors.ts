// Reads the official vectors from ../shared/vectors (never copied into this repo).
import { readdirSync, readFileSync } from 'node:fs';

/** BIP-39's all-zero-entropy test mnemonic; its validator keys are published widely. */
export const TEST_MNEMONIC = `${'abandon '.repeat(11)}about`;

const VECTORS = new URL('../../../shared/vectors/', import.meta.url);

export interface TreeKdfCase {
  readonly seed: string;
  readonly masterSk: bigint;
  readonly childIndex: number;
  readonly childSk: bigint;
}

/** EIP-2333 tree_kdf.json; its SK values exceed 2^53, so they are read as text, then BigInt. */
export function treeKdfCases(): TreeKdfCase[] {
  const text = readFileSync(new URL('eip2333/tree_kdf.json', VECTORS), 'utf8').replace(
    /("(?:master_SK|child_SK)"\s*:\s*)(\d+)/g,
    '$1"$2"',
  );
  const raw = JSON.parse(text) as {
    kdf_tests: Array<{ seed: string; master_SK: string; child_index: number; child_SK: string }>;
  };
  return raw.kdf_tests.map((t) => ({
    seed: t.seed,
    masterSk: BigInt(t.master_SK),
    childIndex: t.child_index,
    childSk: BigInt(t.child_SK),
  }));
}

export interface KeystoreCase {
  readonly name: string;
  readonly keystore: unknown;
  readonly password: string;
  readonly secret: string;
  readonly pubkey: string;
}

export function keystoreCases(): KeystoreCase[] {
  const dir = new URL('eip2335/', VECTORS);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((name) => {
      const v = JSON.parse(readFileSync(new URL(name, dir), 'utf8')) as {
        password: string;
        secret: string;
        pubkey: string;
      };
      return { name, keystore: v, password: v.password, secret: v.secret, pubkey: v.pubkey };
    });
}
