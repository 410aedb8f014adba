import { createHash } from 'node:crypto';
import { ssz } from '@lodestar/types';
import { describe, expect, it } from 'vitest';
import { blsCredentials, executionCredentials } from '../../src/deposit/credentials.js';
import { makeDeposit } from '../../src/deposit/deposit-data.js';
import { launchpadEntry } from '../../src/deposit/deposit-record.js';
import { NETWORKS } from '../../src/deposit/networks.js';
import {
  computeDomain,
  computeSigningRoot,
  DepositMessage,
  DOMAIN_DEPOSIT,
} from '../../src/deposit/ssz.js';
import { MnemonicKeys } from '../../src/keys/bip39.js';
import { randomKey } from '../../src/keys/bls.js';
import { loadBlstBackend, nobleBackend } from '../../src/keys/bls-backend.js';
import { TEST_MNEMONIC } from '../keys/vectors.js';

const hex = (b: Uint8Array) => `0x${Buffer.from(b).toString('hex')}`;
const bytes = (h: string) => Uint8Array.from(Buffer.from(h.replace(/^0x/, ''), 'hex'));
const ADDRESS = '0xf93ee4cf8c6c40b329b0c0626f28333c132cf241';

describe('deposit domain and signing root', () => {
  it('gives the known mainnet deposit domain', () => {
    expect(hex(computeDomain(DOMAIN_DEPOSIT, new Uint8Array(4)))).toBe(
      '0x03000000f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a9',
    );
  });

  it('agrees with @lodestar/types on the deposit message and signing roots', () => {
    const key = randomKey();
    const message = {
      pubkey: bytes(key.pubkey),
      withdrawalCredentials: executionCredentials(ADDRESS, false),
      amount: 32e9,
    };
    const ours = DepositMessage.hashTreeRoot(message);
    expect(hex(ours)).toBe(hex(ssz.phase0.DepositMessage.hashTreeRoot(message)));
    const domain = computeDomain(DOMAIN_DEPOSIT, bytes(NETWORKS.hoodi.forkVersion));
    const forkDataRoot = ssz.phase0.ForkData.hashTreeRoot({
      currentVersion: bytes(NETWORKS.hoodi.forkVersion),
      genesisValidatorsRoot: new Uint8Array(32),
    });
    expect(hex(domain)).toBe(
      hex(Uint8Array.from([...DOMAIN_DEPOSIT, ...forkDataRoot.subarray(0, 28)])),
    );
    expect(hex(computeSigningRoot(ours, domain))).toBe(
      hex(ssz.phase0.SigningData.hashTreeRoot({ objectRoot: ours, domain })),
    );
  });
});

describe('withdrawal credentials', () => {
  it('0x01 and 0x02: the prefix, 11 zero bytes, then the address', () => {
    expect(hex(executionCredentials(ADDRESS, false))).toBe(
      `0x010000000000000000000000${ADDRESS.slice(2)}`,
    );
    expect(hex(executionCredentials(ADDRESS, true))).toBe(
      `0x020000000000000000000000${ADDRESS.slice(2)}`,
    );
  });

  it('refuses an address with a bad EIP-55 checksum', () => {
    expect(() => executionCredentials('0xF93ee4cf8c6c40b329b0c0626f28333c132cf241', false)).toThrow(
      /bad EIP-55 checksum/,
    );
    expect(() => executionCredentials('0x1234', false)).toThrow(/20-byte address/);
  });

  it('0x00: sha256 of the withdrawal pubkey with its first byte zeroed', () => {
    const pk = new Uint8Array(48).fill(9);
    const creds = blsCredentials(pk);
    expect(creds[0]).toBe(0);
    expect(hex(creds.subarray(1))).toBe(
      hex(Uint8Array.from(createHash('sha256').update(pk).digest()).subarray(1)),
    );
  });
});

describe('deposit data', () => {
  const keys = new MnemonicKeys(TEST_MNEMONIC);

  it('reproduces a published deposit of the test mnemonic byte for byte (signature and roots)', () => {
    // Published deposit_data.json entry of a public devnet (fork version 0x10000038) for
    // validator 0 of this mnemonic: an independent check of SSZ, domain and signing.
    const d = makeDeposit(keys.signingKey(0), {
      network: { name: 'devnet', forkVersion: '0x10000038', chainId: 1n, depositContract: ADDRESS },
      amountGwei: 32e9,
      credentials: { type: 'execution', address: ADDRESS, compounding: false },
    });
    expect(launchpadEntry(d)).toEqual({
      pubkey:
        'b3e445d43871965d890a398f719348a1405ac72e35b92727cc570026f54471af7ea7b2040622a8fd0b5bfb2a209b5911',
      withdrawal_credentials: '010000000000000000000000f93ee4cf8c6c40b329b0c0626f28333c132cf241',
      amount: 32000000000,
      signature:
        '999997d98b08c3513bf2722a6e62fce6824854caf22bfff43fe942f29ea2061a611d10c6bdb9e4cec73d7dfbfed9ed6a0cda76bd05b6c0dc9951238d7d7ae2e201014502fc95e12a7e0eb20539309a3c06e03d76305cf7f9c6a8b39e2f278e04',
      deposit_message_root: '524546181f83c9e0adf68da0da61ae6a079c8fab95d29514c4911672cb18d51d',
      deposit_data_root: '425f817e7ed0aad4e9e729c9a064ab5666d22d04681f89ffc33e85ea7a8a32ae',
      fork_version: '10000038',
      network_name: 'devnet',
      deposit_cli_version: '2.7.0',
    });
  });

  it('uses 0x00 credentials from the EIP-2334 withdrawal key when there is no address', () => {
    const key = keys.signingKey(1);
    const d = makeDeposit(key, {
      network: NETWORKS.hoodi,
      amountGwei: 32e9,
      credentials: { type: 'bls' },
    });
    expect(d.withdrawalCredentials).toBe(
      hex(blsCredentials(key.withdrawalPubkey ?? new Uint8Array())),
    );
    expect(d).toMatchObject({ forkVersion: '0x10000910', networkName: 'hoodi' });
  });

  it('refuses 0x00 credentials for a key with no withdrawal key (a random key)', () => {
    expect(() =>
      makeDeposit(randomKey(), {
        network: NETWORKS.hoodi,
        amountGwei: 32e9,
        credentials: { type: 'bls' },
      }),
    ).toThrow(/--mnemonic-file or --withdrawal-address/);
  });
});

describe('BLS backends', () => {
  it('noble and blst give byte-identical pubkeys and signatures, and each verifies the other', async () => {
    const blst = await loadBlstBackend();
    expect(blst?.name).toBe('blst'); // installed here as an optional dependency
    if (!blst) return;
    for (let i = 0; i < 5; i++) {
      const { secretKey } = randomKey();
      const msg = Uint8Array.from({ length: 32 }, (_, j) => i * 32 + j);
      const pk = nobleBackend.publicKey(secretKey);
      const sig = nobleBackend.sign(secretKey, msg);
      expect(hex(blst.publicKey(secretKey))).toBe(hex(pk));
      expect(hex(blst.sign(secretKey, msg))).toBe(hex(sig));
      expect(blst.verify(pk, msg, sig)).toBe(true);
      expect(nobleBackend.verify(pk, msg, sig)).toBe(true);
      msg[0] = (msg[0] ?? 0) ^ 1;
      expect(blst.verify(pk, msg, sig)).toBe(false);
      expect(nobleBackend.verify(pk, msg, sig)).toBe(false);
    }
  });
});
