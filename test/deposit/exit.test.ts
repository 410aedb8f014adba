// Voluntary exits checked without pkm's signing path: the signing root recomputed by hand
// (sha256 of SSZ chunks) and with @lodestar/types, the domain by hand per EIP-7044
// (DOMAIN_VOLUNTARY_EXIT, CAPELLA_FORK_VERSION, genesis_validators_root), and the signature
// verified with @noble/curves called directly under Ethereum's DST.
import { createHash } from 'node:crypto';
import { ssz } from '@lodestar/types';
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { describe, expect, it } from 'vitest';
import { signVoluntaryExit } from '../../src/deposit/exit.js';
import { currentEpoch, type ExitChain, exitChainOf } from '../../src/deposit/exit-chain.js';
import { NETWORKS } from '../../src/deposit/networks.js';
import { publicKeyOf } from '../../src/keys/bls.js';
import { loadBlstBackend, nobleBackend } from '../../src/keys/bls-backend.js';

const DST = 'BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_';
const sha256 = (...parts: Uint8Array[]) =>
  new Uint8Array(createHash('sha256').update(Buffer.concat(parts)).digest());
const hex = (s: string) => Uint8Array.from(Buffer.from(s.replace(/^0x/, ''), 'hex'));
const chunk = (bytes: Uint8Array) => {
  const out = new Uint8Array(32);
  out.set(bytes);
  return out;
};
const uint64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return chunk(b);
};

/** compute_domain by hand: 0x04000000 then the first 28 bytes of hash_tree_root(ForkData). */
function domainByHand(forkVersion: string, root: string): Uint8Array {
  const forkDataRoot = sha256(chunk(hex(forkVersion)), hex(root));
  return Uint8Array.from([0x04, 0, 0, 0, ...forkDataRoot.subarray(0, 28)]);
}

/** True when the exit verifies against the pubkey on `chain`, by noble called directly. */
function verifies(
  pubkey: string,
  exit: { message: { epoch: string; validator_index: string }; signature: string },
  forkVersion: string,
  root: string,
): boolean {
  const epoch = BigInt(exit.message.epoch);
  const index = BigInt(exit.message.validator_index);
  const objectRoot = sha256(uint64(epoch), uint64(index));
  // The same root from @lodestar/types, an SSZ implementation pkm does not sign with.
  const lodestarRoot = ssz.phase0.VoluntaryExit.hashTreeRoot({
    epoch: Number(epoch),
    validatorIndex: Number(index),
  });
  expect(Buffer.from(lodestarRoot).toString('hex')).toBe(Buffer.from(objectRoot).toString('hex'));
  const domain = domainByHand(forkVersion, root);
  const signingRoot = sha256(objectRoot, domain);
  expect(Buffer.from(ssz.phase0.SigningData.hashTreeRoot({ objectRoot, domain }))).toEqual(
    Buffer.from(signingRoot),
  );
  const sigs = bls12_381.longSignatures;
  return sigs.verify(hex(exit.signature), sigs.hash(signingRoot, DST), hex(pubkey));
}

const SECRET = hex('263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3');
const PUBKEY = publicKeyOf(SECRET);

describe('signVoluntaryExit', () => {
  for (const name of ['mainnet', 'sepolia', 'holesky', 'hoodi'] as const) {
    it(`${name}: verifies over the Capella fork version's domain (EIP-7044), by hand`, () => {
      const chain = exitChainOf(NETWORKS[name]);
      if (chain === undefined) throw new Error(`${name} has no exit chain`);
      const exit = signVoluntaryExit(
        { secretKey: SECRET, pubkey: PUBKEY },
        { epoch: 0n, validatorIndex: 123n },
        chain,
      );
      expect(exit.message).toEqual({ epoch: '0', validator_index: '123' });
      expect(exit.signature).toMatch(/^0x[0-9a-f]{192}$/);
      expect(verifies(PUBKEY, exit, chain.capellaForkVersion, chain.genesisValidatorsRoot)).toBe(
        true,
      );
      // Not over the genesis fork version (a phase0 domain), nor another chain's root.
      expect(verifies(PUBKEY, exit, NETWORKS[name].forkVersion, chain.genesisValidatorsRoot)).toBe(
        false,
      );
      expect(verifies(PUBKEY, exit, chain.capellaForkVersion, `0x${'00'.repeat(32)}`)).toBe(false);
    });
  }

  it('pins the Capella fork versions of the named networks', () => {
    expect(Object.values(NETWORKS).map((n) => [n.name, n.capellaForkVersion])).toEqual([
      ['mainnet', '0x03000000'],
      ['sepolia', '0x90000072'],
      ['holesky', '0x04017000'],
      ['hoodi', '0x40000910'],
    ]);
  });

  it('signs the epoch and index asked, up to uint64, the same with noble and blst', async () => {
    const chain: ExitChain = {
      name: 'custom',
      capellaForkVersion: '0x40000910',
      genesisValidatorsRoot: `0x${'5a'.repeat(32)}`,
    };
    const exit = { epoch: 2n ** 64n - 1n, validatorIndex: 2n ** 40n + 7n };
    const a = signVoluntaryExit({ secretKey: SECRET, pubkey: PUBKEY }, exit, chain, nobleBackend);
    expect(a.message).toEqual({
      epoch: '18446744073709551615',
      validator_index: '1099511627783',
    });
    // A big epoch: checked by hand only (lodestar's Epoch is a JS number).
    const objectRoot = sha256(uint64(exit.epoch), uint64(exit.validatorIndex));
    const signingRoot = sha256(objectRoot, domainByHand('0x40000910', chain.genesisValidatorsRoot));
    const sigs = bls12_381.longSignatures;
    expect(sigs.verify(hex(a.signature), sigs.hash(signingRoot, DST), hex(PUBKEY))).toBe(true);
    const blst = await loadBlstBackend();
    if (blst) {
      const b = signVoluntaryExit({ secretKey: SECRET, pubkey: PUBKEY }, exit, chain, blst);
      expect(b).toEqual(a);
    }
  });

  it('refuses a key whose secret does not match the pubkey', () => {
    const chain = exitChainOf(NETWORKS.hoodi);
    if (chain === undefined) throw new Error('hoodi has no exit chain');
    const other = publicKeyOf(hex(`${'11'.repeat(31)}12`));
    expect(() =>
      signVoluntaryExit(
        { secretKey: SECRET, pubkey: other },
        { epoch: 0n, validatorIndex: 1n },
        chain,
      ),
    ).toThrow(/does not verify/);
  });
});

describe('currentEpoch and exitChainOf', () => {
  it('counts 384 s epochs from genesis, and knows none without a genesis time', () => {
    const chain = exitChainOf(NETWORKS.mainnet);
    if (chain === undefined) throw new Error('mainnet has no exit chain');
    const genesis = NETWORKS.mainnet.genesisTime ?? 0;
    expect(currentEpoch(chain, genesis * 1000)).toBe(0n);
    expect(currentEpoch(chain, (genesis + 384 * 10 + 383) * 1000)).toBe(10n);
    expect(currentEpoch(chain, (genesis - 5) * 1000)).toBe(0n);
    const { genesisTime: _t, ...custom } = chain;
    expect(currentEpoch(custom, Date.now())).toBeUndefined();
  });

  it('has no chain for a custom network (no Capella fork version) or none at all', () => {
    expect(exitChainOf(undefined)).toBeUndefined();
    expect(
      exitChainOf({
        name: 'custom',
        forkVersion: '0x10000910',
        chainId: 1n,
        depositContract: '0x4242424242424242424242424242424242424242',
        genesisValidatorsRoot: `0x${'00'.repeat(32)}`,
      }),
    ).toBeUndefined();
  });
});
