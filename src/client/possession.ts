// The agent's proofs of possession (keys/proof.ts): when the server refuses a heartbeat claim
// (a key it does not record as this pod's: its store was restored from an older copy, say),
// the agent opens that key's keystore in --out with the password beside it and signs the
// server's challenge. The secret lives only for the signature and is wiped after it.
import { join } from 'node:path';
import { messageOf } from '../errors.js';
import { readSecretFile } from '../files.js';
import { decryptKeystore } from '../keys/keystore.js';
import { proofMessage, signProof } from '../keys/proof.js';
import { readKeystore } from './client.js';
import type { LayoutSpec } from './layouts.js';

export interface PossessionRequest {
  readonly out: string;
  readonly spec: LayoutSpec;
  readonly bootToken: string;
  /** `namespace/pod`, as the server binds the challenge. */
  readonly identity: string;
}

export interface Possession {
  /** pubkey -> proof. */
  readonly proofs: Record<string, string>;
  /** Keys that could not be proven, each with why (no secret in the reason). */
  readonly failed: ReadonlyArray<{ readonly pubkey: string; readonly reason: string }>;
}

/**
 * A proof for each of `pubkeys` whose keystore and password are in --out. A key that cannot be
 * opened (its files gone or changed) is reported in `failed` and the others are proven all the
 * same: one bad file must not keep the server from learning where the rest run.
 */
export async function signPossession(
  req: PossessionRequest,
  pubkeys: readonly string[],
): Promise<Possession> {
  const proofs: Record<string, string> = {};
  const failed: Array<{ pubkey: string; reason: string }> = [];
  for (const pubkey of pubkeys) {
    try {
      const passwordPath = req.spec.passwordPath(pubkey) ?? req.spec.sharedPasswordPath;
      if (passwordPath === undefined) throw new Error('the layout names no password file');
      const keystore = await readKeystore(join(req.out, req.spec.keystorePath(pubkey)));
      const password = await readSecretFile(join(req.out, passwordPath), 'password-file');
      const secretKey = await decryptKeystore(keystore, password);
      try {
        proofs[pubkey] = signProof(secretKey, proofMessage(req.bootToken, req.identity, pubkey));
      } finally {
        secretKey.fill(0);
      }
    } catch (err) {
      failed.push({ pubkey, reason: messageOf(err) });
    }
  }
  return { proofs, failed };
}
