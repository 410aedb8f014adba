// Heartbeats over HTTP as `pkm agent` sends them: the keys a pod runs, and for claims a proof of
// possession of each over the server's challenge (keys/proof.ts).
import type { BlsKey } from '../../src/keys/bls.js';
import { proofMessage, signProof } from '../../src/keys/proof.js';
import { type AllocationBody, http } from '../helpers.js';

export interface Beat {
  bootToken: string;
  reclaimed: string[];
  conflicts: string[];
  unknown: string[];
  reported: string[];
  stillCooling: string[];
  refused: string[];
}

export const allocateKeys = async (url: string, pod: string, count: number): Promise<BlsKey[]> =>
  (await http<AllocationBody>(url, 'POST', `/v1/pods/${pod}/keys`, { count })).body.keys.map(
    (k) => ({ pubkey: k.pubkey, secretKey: Buffer.from(k.secretKey.slice(2), 'hex') }),
  );
export const allocate = async (url: string, pod: string, count: number) =>
  (await allocateKeys(url, pod, count)).map((k) => k.pubkey);
export const beat = (
  url: string,
  pod: string,
  pubkeys: string[],
  proofs?: Record<string, string>,
) =>
  http<Beat>(url, 'POST', `/v1/pods/${pod}/heartbeat`, { pubkeys, ...(proofs ? { proofs } : {}) });
/** What `pkm agent` sends: a proof for each key, over this server's challenge for `pod`. */
export const prove = (bootToken: string, pod: string, keys: readonly BlsKey[]) =>
  Object.fromEntries(
    keys.map((k) => [
      k.pubkey,
      signProof(k.secretKey, proofMessage(bootToken, `default/${pod}`, k.pubkey)),
    ]),
  );
/** A heartbeat with proofs for every key: the pod that runs them. */
export const provenBeat = async (url: string, pod: string, keys: readonly BlsKey[]) => {
  const { bootToken } = (await beat(url, pod, [])).body;
  return beat(
    url,
    pod,
    keys.map((k) => k.pubkey),
    prove(bootToken, pod, keys),
  );
};
