import { mnemonicToSeedSync } from '@scure/bip39';
import { describe, expect, it } from 'vitest';
import {
  deriveChildSk,
  deriveMasterSk,
  deriveSkAtPath,
  secretKeyBytes,
} from '../../src/keys/eip2333.js';
import { signingKeyPath, withdrawalKeyPath } from '../../src/keys/eip2334.js';
import { treeKdfCases } from './vectors.js';

describe('EIP-2333 derivation', () => {
  const cases = treeKdfCases();

  it('reads every official case', () => {
    expect(cases.length).toBeGreaterThanOrEqual(4);
  });

  it.each(cases)('seed $seed: master and child $childIndex', (c) => {
    const master = deriveMasterSk(Buffer.from(c.seed, 'hex'));
    expect(master).toBe(c.masterSk);
    expect(deriveChildSk(master, c.childIndex)).toBe(c.childSk);
  });

  it('derives along a path one child at a time', () => {
    const first = cases[0];
    if (!first) throw new Error('no vectors');
    const seed = Buffer.from(first.seed, 'hex');
    expect(deriveSkAtPath(seed, `m/${first.childIndex}`)).toBe(first.childSk);
    expect(secretKeyBytes(first.childSk)).toHaveLength(32);
  });

  it('refuses a seed shorter than 32 bytes', () => {
    expect(() => deriveMasterSk(new Uint8Array(31))).toThrow(/at least 32 bytes/);
  });

  it('matches BIP-39: the test mnemonic with passphrase TREZOR gives the first vector seed', () => {
    // An independent fact: BIP-39's published vector for this mnemonic and passphrase.
    const seed = mnemonicToSeedSync(`${'abandon '.repeat(11)}about`, 'TREZOR');
    expect(Buffer.from(seed).toString('hex')).toBe(cases[0]?.seed);
  });
});

describe('EIP-2334 paths', () => {
  it('puts the withdrawal key at m/12381/3600/i/0 and the signing key below it', () => {
    expect(withdrawalKeyPath(7)).toBe('m/12381/3600/7/0');
    expect(signingKeyPath(7)).toBe('m/12381/3600/7/0/0');
  });
});
