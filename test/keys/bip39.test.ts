import { mnemonicToSeedSync } from '@scure/bip39';
import { describe, expect, it } from 'vitest';
import { MnemonicKeys, normaliseMnemonic } from '../../src/keys/bip39.js';
import { publicKeyOf, toHex } from '../../src/keys/bls.js';
import { deriveSkAtPath, secretKeyBytes } from '../../src/keys/eip2333.js';
import { TEST_MNEMONIC } from './vectors.js';

describe('mnemonic key source', () => {
  const keys = new MnemonicKeys(TEST_MNEMONIC);

  it('derives the signing key at m/12381/3600/i/0/0, the same as the vector-checked EIP-2333 walk', () => {
    const seed = mnemonicToSeedSync(TEST_MNEMONIC);
    for (const i of [0, 1, 2]) {
      const k = keys.signingKey(i);
      expect(k.path).toBe(`m/12381/3600/${i}/0/0`);
      expect(toHex(k.secretKey)).toBe(toHex(secretKeyBytes(deriveSkAtPath(seed, k.path ?? ''))));
      expect(publicKeyOf(k.secretKey)).toBe(k.pubkey);
    }
  });

  it('gives the published validator pubkeys of the standard test mnemonic (an independent fact)', () => {
    // Published for this mnemonic in public devnet fixtures made with the staking deposit CLI.
    expect([0, 1, 2].map((i) => keys.signingKey(i).pubkey)).toEqual([
      '0xb3e445d43871965d890a398f719348a1405ac72e35b92727cc570026f54471af7ea7b2040622a8fd0b5bfb2a209b5911',
      '0xaeb399bf5648b0e9980c1731824c269631a41320c3d7f730c40587e1a37a5e1c8b5755fd90080a7b3fb90d3fd419c0a7',
      '0x92f46b0dcc7db24f4946b5773b5525efa0bbb0810088588323d9de84f0e42f22df96cbb97065b49a2006c653ec8060f4',
    ]);
  });

  it('fingerprints the mnemonic and passphrase without containing either', () => {
    const again = new MnemonicKeys(`  ${TEST_MNEMONIC.toUpperCase().replaceAll(' ', '\n')}\n`);
    expect(again.fingerprint).toBe(keys.fingerprint);
    expect(new MnemonicKeys(TEST_MNEMONIC, 'TREZOR').fingerprint).not.toBe(keys.fingerprint);
    expect(keys.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(keys.fingerprint).not.toContain(Buffer.from('abandon').toString('hex'));
  });

  it('refuses words that are not a valid BIP-39 mnemonic', () => {
    expect(() => new MnemonicKeys(`${'abandon '.repeat(11)}abandon`)).toThrow(/valid BIP-39/);
    expect(normaliseMnemonic(' a\tb \n c ')).toBe('a b c');
  });
});
