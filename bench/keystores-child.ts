// One measured run of bench/keystores, in its own process so that its peak RSS is its own.
// Prints {"ms","maxRssMiB"} on stdout.
//   baseline N              sequential create() of @chainsafe/bls-keystore, scrypt
//   client URL OUT KDF SHARED   `pkm client`'s own code path against a running server
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { create, defaultScryptModule } from '@chainsafe/bls-keystore';
import { runClient } from '../src/client/client.js';
import { randomKey } from '../src/keys/bls.js';
import { createLogger } from '../src/log.js';

const [mode, ...args] = process.argv.slice(2);
const KEYS = 64;
let ms: number;

if (mode === 'baseline') {
  const keys = Array.from({ length: KEYS }, randomKey);
  const t0 = performance.now();
  for (const k of keys) {
    await create(
      'a password',
      k.secretKey,
      Buffer.from(k.pubkey.slice(2), 'hex'),
      '',
      null,
      defaultScryptModule(),
    );
  }
  ms = performance.now() - t0;
} else if (mode === 'client') {
  const [url = '', out = '', kdf = 'scrypt', shared = 'false'] = args;
  const t0 = performance.now();
  await runClient(
    {
      server: new URL(url),
      pod: `bench-${kdf}-${shared}`,
      namespace: 'default',
      count: KEYS,
      out,
      layout: 'lighthouse',
      kdf: kdf === 'pbkdf2' ? 'pbkdf2' : 'scrypt',
      passwordFile: join(out, 'password.txt'),
      timeoutMs: 60_000,
      concurrency: availableParallelism(),
      sharedKdf: shared === 'true',
    },
    createLogger('silent'),
  );
  ms = performance.now() - t0;
} else {
  throw new Error('usage: keystores-child baseline | client URL OUT KDF SHARED');
}
// resourceUsage().maxRSS is in KiB.
process.stdout.write(
  `${JSON.stringify({ ms, maxRssMiB: process.resourceUsage().maxRSS / 1024 })}\n`,
);
