// EIP-2334 paths for validator keys (https://eips.ethereum.org/EIPS/eip-2334):
// purpose 12381, coin type 3600, account i; withdrawal key at m/12381/3600/i/0, signing key
// (the validator's key) one level below it at m/12381/3600/i/0/0.

export function withdrawalKeyPath(index: number): string {
  return `m/12381/3600/${index}/0`;
}

export function signingKeyPath(index: number): string {
  return `${withdrawalKeyPath(index)}/0`;
}
