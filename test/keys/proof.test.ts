import { afterAll, describe, expect, it } from 'vitest';
import { randomKey } from '../../src/keys/bls.js';
import { bls, ETH_DST } from '../../src/keys/bls-backend.js';
import { PROOF_DST, proofMessage, signProof } from '../../src/keys/proof.js';
import { ProofVerifier } from '../../src/keys/proof-verifier.js';

const verifier = new ProofVerifier();
afterAll(() => verifier.close());

describe('heartbeat proofs of possession', () => {
  const key = randomKey();
  const other = randomKey();
  const message = proofMessage('boot-1', 'default/validator-0', key.pubkey);

  it('verify a proof by the key over its own challenge, on the worker', async () => {
    const signature = signProof(key.secretKey, message);
    expect(await verifier.verify([{ pubkey: key.pubkey, message, signature }])).toEqual([true]);
  });

  it('refuse a proof bound to another boot token, pod, or key, or by another key', async () => {
    const signature = signProof(key.secretKey, message);
    const items = [
      { pubkey: key.pubkey, message: proofMessage('boot-2', 'default/validator-0', key.pubkey) },
      { pubkey: key.pubkey, message: proofMessage('boot-1', 'default/attacker-7', key.pubkey) },
      {
        pubkey: other.pubkey,
        message: proofMessage('boot-1', 'default/validator-0', other.pubkey),
      },
      { pubkey: other.pubkey, message },
    ].map((i) => ({ ...i, signature }));
    expect(await verifier.verify(items)).toEqual([false, false, false, false]);
  });

  it('treat malformed points and signatures as invalid, not as errors', async () => {
    const signature = signProof(key.secretKey, message);
    const items = [
      { pubkey: key.pubkey, message, signature: `0x${'00'.repeat(96)}` },
      { pubkey: `0x${'11'.repeat(48)}`, message, signature },
      { pubkey: key.pubkey, message, signature: '0x1234' },
    ];
    expect(await verifier.verify(items)).toEqual([false, false, false]);
  });

  it('never accept an Ethereum signature as a proof: the DSTs differ', async () => {
    expect(PROOF_DST).not.toBe(ETH_DST);
    const eth = `0x${Buffer.from(bls.sign(key.secretKey, message)).toString('hex')}`;
    expect(await verifier.verify([{ pubkey: key.pubkey, message, signature: eth }])).toEqual([
      false,
    ]);
    // And a proof is no valid Ethereum signature over the same bytes.
    const proof = Buffer.from(signProof(key.secretKey, message).slice(2), 'hex');
    expect(bls.verify(Buffer.from(key.pubkey.slice(2), 'hex'), message, proof)).toBe(false);
  });

  it('refuse a challenge field with a newline, which could shift the fields', () => {
    expect(() => proofMessage('boot\n1', 'default/a', key.pubkey)).toThrow();
    expect(() => proofMessage('', 'default/a', key.pubkey)).toThrow();
  });
});
