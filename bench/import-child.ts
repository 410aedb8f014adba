// The baseline of bench/import, in its own process: sequential decrypt() of @chainsafe/bls-keystore
// (what Lodestar uses) over every keystore in a folder. Prints {"ms"} on stdout.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decrypt } from '@chainsafe/bls-keystore';

const [dir = '', password = ''] = process.argv.slice(2);
const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
const keystores = await Promise.all(
  files.map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8'))),
);
const t0 = performance.now();
for (const keystore of keystores) await decrypt(keystore, password);
process.stdout.write(`${JSON.stringify({ ms: performance.now() - t0 })}\n`);
