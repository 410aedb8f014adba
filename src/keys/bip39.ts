// BIP-39 mnemonics (English wordlist, optional passphrase) as a key source: the signing key of
// validator i is derived at EIP-2334's m/12381/3600/i/0/0 with EIP-2333.
import { createHash } from 'node:crypto';
import { mnemonicToSeedSync, validateMnemonic } from '@scure/bip39';
import { wordlist } from '@scure/bip39/wordlists/english.js';
import { PkmError } from '../errors.js';
import type { NewKey } from './bls.js';
import { publicKeyOf } from './bls.js';
import { deriveChildSk, deriveMasterSk, parsePath, secretKeyBytes } from './eip2333.js';
import { signingKeyPath } from './eip2334.js';

/** Words separated by any white space (a file may wrap them or end with a newline). */
export function normaliseMnemonic(text: string): string {
  return text.normalize('NFKD').trim().split(/\s+/).join(' ').toLowerCase();
}

export class MnemonicKeys {
  /** The derivation node m/12381/3600, shared by every validator index. */
  private readonly coinNode: bigint;
  /**
   * Identifies the seed without revealing it: SHA-256 over a label and the public key of the
   * master node. A different mnemonic or passphrase gives a different fingerprint.
   */
  readonly fingerprint: string;

  constructor(mnemonic: string, passphrase = '') {
    const words = normaliseMnemonic(mnemonic);
    if (!validateMnemonic(words, wordlist)) {
      throw new PkmError(
        'INVALID_CONFIG',
        '--mnemonic-file does not hold a valid BIP-39 English mnemonic (12 to 24 words, checksum included)',
      );
    }
    const seed = mnemonicToSeedSync(words, passphrase.normalize('NFKD'));
    const master = deriveMasterSk(seed);
    const [purpose, coin] = parsePath('m/12381/3600');
    this.coinNode = deriveChildSk(deriveChildSk(master, purpose ?? 12381), coin ?? 3600);
    const masterPub = publicKeyOf(secretKeyBytes(master));
    this.fingerprint = createHash('sha256')
      .update(`pkm-mnemonic-fingerprint:${masterPub}`)
      .digest('hex');
    seed.fill(0);
  }

  /** The public key of validator `index`'s signing key (m/12381/3600/index/0/0) alone. */
  signingPubkey(index: number): string {
    const withdrawal = deriveChildSk(deriveChildSk(this.coinNode, index), 0);
    return publicKeyOf(secretKeyBytes(deriveChildSk(withdrawal, 0)));
  }

  /**
   * The signing key of validator `index`, at m/12381/3600/index/0/0, with the public key of
   * its withdrawal key at m/12381/3600/index/0 (for 0x00 withdrawal credentials).
   */
  signingKey(index: number): NewKey {
    const withdrawal = deriveChildSk(deriveChildSk(this.coinNode, index), 0);
    const secretKey = secretKeyBytes(deriveChildSk(withdrawal, 0));
    const withdrawalPubkey = Buffer.from(publicKeyOf(secretKeyBytes(withdrawal)).slice(2), 'hex');
    return {
      secretKey,
      pubkey: publicKeyOf(secretKey),
      path: signingKeyPath(index),
      withdrawalPubkey,
    };
  }
}
