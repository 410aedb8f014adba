// Withdrawal credentials (consensus-specs): 0x00 || sha256(BLS withdrawal pubkey)[1:],
// 0x01 || 11 zero bytes || execution address, or 0x02 (compounding, EIP-7251) likewise.
import { createHash } from 'node:crypto';
import { getAddress } from 'ethers/address';
import { PkmError } from '../errors.js';

export type CredentialsSpec =
  | { readonly type: 'execution'; readonly address: string; readonly compounding: boolean }
  | { readonly type: 'bls' };

/** A checksummed address; a mixed-case address with a bad EIP-55 checksum is refused. */
export function parseAddress(value: string, flag: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(value)) {
    throw new PkmError(
      'INVALID_CONFIG',
      `--${flag} takes a 20-byte address, e.g. --${flag} 0x00000000219ab540356cBB839Cbe05303d7705Fa`,
    );
  }
  try {
    return getAddress(value);
  } catch {
    throw new PkmError(
      'INVALID_CONFIG',
      `--${flag} ${value} has a bad EIP-55 checksum: copy the address again`,
    );
  }
}

export function executionCredentials(address: string, compounding: boolean): Uint8Array {
  const creds = new Uint8Array(32);
  creds[0] = compounding ? 0x02 : 0x01;
  creds.set(Buffer.from(parseAddress(address, 'withdrawal-address').slice(2), 'hex'), 12);
  return creds;
}

export function blsCredentials(withdrawalPubkey: Uint8Array): Uint8Array {
  const creds = Uint8Array.from(createHash('sha256').update(withdrawalPubkey).digest());
  creds[0] = 0x00;
  return creds;
}
