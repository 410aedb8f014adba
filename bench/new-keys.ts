// bench/new-keys: 200 new keys made, with deposit data signed and verified (record mode), per
// BLS backend. noble (pure JS) is the baseline; blst (native) is measured in the same run.
import { bls12_381 } from '@noble/curves/bls12-381.js';
import { makeDeposit } from '../src/deposit/deposit-data.js';
import { NETWORKS } from '../src/deposit/networks.js';
import { toHex } from '../src/keys/bls.js';
import { type BlsBackend, loadBlstBackend, nobleBackend } from '../src/keys/bls-backend.js';
import { report } from './lib.js';

const KEYS = 200;
const config = {
  network: NETWORKS.hoodi,
  amountGwei: 32e9,
  credentials: {
    type: 'execution',
    address: '0xf93ee4cf8c6c40b329b0c0626f28333c132cf241',
    compounding: false,
  },
} as const;

function run(backend: BlsBackend): number {
  const t0 = performance.now();
  for (let i = 0; i < KEYS; i++) {
    const secretKey = bls12_381.utils.randomSecretKey();
    const key = { secretKey, pubkey: toHex(backend.publicKey(secretKey)) };
    makeDeposit(key, config, backend);
  }
  return (KEYS / (performance.now() - t0)) * 1000;
}

export async function benchNewKeys(): Promise<void> {
  const noble = run(nobleBackend);
  report({
    name: 'new_keys.noble',
    value: Math.round(noble * 10) / 10,
    unit: 'keys/s',
    target: '>= 20 keys/s',
  });
  const blst = await loadBlstBackend();
  if (!blst) {
    report({ name: 'new_keys.blst', value: 0, unit: 'keys/s', target: 'not installed here' });
    return;
  }
  const native = run(blst);
  report({
    name: 'new_keys.blst',
    value: Math.round(native),
    unit: 'keys/s',
    baseline: Math.round(noble * 10) / 10,
    ratio: Math.round((native / noble) * 10) / 10,
    target: '>= 300 keys/s',
  });
}
