// The fake VC's duty: an attestation step that signs one attestation for `epoch` with each key
// it holds, local keys with their secret and remote keys through their signer's EIP-3030 route
// (POST /api/v1/eth2/sign/{pubkey}). As clients do, each attestation is checked against and
// written to the slashing database before it is signed, so a key that signed has history that
// a later DELETE returns; one the history forbids is refused, not signed.
import { bls } from '../../../src/keys/bls-backend.js';
import type { AttestReport } from './answers.js';
import { attestationRoot, hex } from './attestation.js';
import type { LocalKeys } from './local-keys.js';
import type { RemoteKeys } from './remote-keys.js';
import type { SlashingDb } from './slashing-db.js';
import type { Witness } from './witness.js';

export type { AttestReport } from './answers.js';

export interface Attester {
  readonly name: string;
  readonly genesisValidatorsRoot: string;
  readonly witness: Witness;
  readonly slashing: SlashingDb;
  readonly local: LocalKeys;
  readonly remote: RemoteKeys;
  persist(): Promise<void>;
}

/** Asks the signer at `url` to sign; the signature, or why not. */
async function remoteSign(
  url: string,
  pubkey: string,
  root: string,
  source: number,
  target: number,
) {
  const body = {
    type: 'ATTESTATION',
    signingRoot: root,
    attestation: { source: { epoch: String(source) }, target: { epoch: String(target) } },
  };
  try {
    const res = await fetch(`${url}/api/v1/eth2/sign/${pubkey}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const json: unknown = await res.json().catch(() => undefined);
    const sig =
      typeof json === 'object' && json !== null && 'signature' in json ? json.signature : undefined;
    if (res.status === 200 && typeof sig === 'string') return { signature: sig };
    return { reason: `the signer answered ${res.status}` };
  } catch (err) {
    return { reason: `the signer is unreachable: ${String(err)}` };
  }
}

/** One attestation per held key for `epoch` (source epoch - 1). The caller holds the VC's lock. */
export async function attest(vc: Attester, epoch: number): Promise<AttestReport> {
  const source = Math.max(0, epoch - 1);
  const root = attestationRoot(vc.genesisValidatorsRoot, vc.name, source, epoch);
  const rootHex = hex(root);
  const report: AttestReport = { epoch, signed: [], refused: [] };
  const allowed = (pubkey: string) => {
    const reason = vc.slashing.recordAttestation(pubkey, source, epoch, rootHex);
    if (reason !== undefined) report.refused.push({ pubkey, reason });
    return reason === undefined;
  };
  const local = vc.local.signers().filter(([pubkey]) => allowed(pubkey));
  const remote = vc.remote.saved().filter((r) => allowed(r.pubkey));
  await vc.persist(); // the history is on disk before anything is signed
  for (const [pubkey, secret] of local) {
    const signature = hex(bls.sign(secret, root));
    vc.witness.record({ kind: 'signed', peer: vc.name, pubkey, target: epoch, root: rootHex });
    report.signed.push({ pubkey, signature });
  }
  for (const { pubkey, url } of remote) {
    const got = await remoteSign(url, pubkey, rootHex, source, epoch);
    if ('reason' in got) {
      report.refused.push({ pubkey, reason: got.reason ?? '' });
      continue;
    }
    vc.witness.record({
      kind: 'signed',
      peer: vc.name,
      pubkey,
      target: epoch,
      root: rootHex,
      via: url,
    });
    report.signed.push({ pubkey, signature: got.signature, via: url });
  }
  return report;
}
