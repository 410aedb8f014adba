// The Keymanager-API fault tests' shared setup: a server with an admin token and a pod token
// (a TokenReview stand-in), the chain it signs for, cheap keystores and interchanges.
import { randomKey } from '../../src/keys/bls.js';
import { encryptKeystore, type KdfCosts } from '../../src/keys/keystore.js';
import type { TokenReviewer } from '../../src/kube/token-review.js';
import { Auth } from '../../src/server/auth.js';
import { startTestServer, type TestServer } from '../helpers.js';

const CHEAP: KdfCosts = { scrypt: { n: 1024, r: 8, p: 1 }, pbkdf2: { c: 1024 } };
export const ADMIN = 'a'.repeat(64);
export const POD_TOKEN = 'pod-token-of-p1';
export const admin = { authorization: `Bearer ${ADMIN}` };
export const ROOT = `0x${'ab'.repeat(32)}`;
export const GENESIS = Date.UTC(2020, 11, 1) / 1000;
export const PATH = '/eth/v1/keystores';
export interface Statuses {
  data: Array<{ status: string; message?: string }>;
  slashing_protection: string;
}

export async function server(opts: { beacon?: boolean } = {}): Promise<TestServer> {
  const reviewer: TokenReviewer = {
    review: async (token: string) => {
      if (token !== POD_TOKEN) throw new Error('bad token');
      return { pod: 'p1', uid: 'u1', expiresAt: undefined };
    },
  };
  return startTestServer({
    auth: new Auth({ adminTokens: [ADMIN], reviewer }),
    beacon: { genesisTime: opts.beacon === false ? 0 : GENESIS, genesisValidatorsRoot: ROOT },
  });
}

export async function keystores(n: number) {
  const keys = Array.from({ length: n }, () => randomKey());
  const files = await Promise.all(
    keys.map((k, i) =>
      encryptKeystore(k.secretKey, `pw${i}`, { pubkey: k.pubkey, path: '' }, 'scrypt', CHEAP),
    ),
  );
  return {
    secrets: keys.map((k) => Buffer.from(k.secretKey).toString('hex')),
    pubkeys: keys.map((k) => k.pubkey),
    keystores: files.map((f) => JSON.stringify(f)),
    passwords: keys.map((_, i) => `pw${i}`),
  };
}

export const ic = (entries: Array<[string, number, number]>) => ({
  metadata: { interchange_format_version: '5', genesis_validators_root: ROOT },
  data: entries.map(([pubkey, slot, epoch]) => ({
    pubkey,
    signed_blocks: [{ slot: String(slot) }],
    signed_attestations: [{ source_epoch: String(epoch - 1), target_epoch: String(epoch) }],
  })),
});
