// vitest globalSetup: makes the secret ledger's folder before the run; after it, greps every
// log line that a spawned `pkm` printed for every secret the tests saw (as hex, with and without
// 0x, and as base64 of the bytes). A single hit fails the run.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function forms(secret: string): string[] {
  const hex = secret.replace(/^0x/, '');
  if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length % 2 !== 0) return [secret];
  const bytes = Buffer.from(hex, 'hex');
  return [hex.toLowerCase(), bytes.toString('base64'), bytes.toString('base64url')];
}

/** The secrets that appear in the logs, in any of their forms (case-insensitive). */
export function findLeaks(secrets: readonly string[], logs: readonly string[]): string[] {
  const text = logs.join('\n').toLowerCase();
  return secrets.filter((s) => forms(s).some((f) => text.includes(f.toLowerCase())));
}

async function lines(dir: string, prefix: string): Promise<string[]> {
  const files = (await readdir(dir)).filter((f) => f.startsWith(prefix));
  const texts = await Promise.all(files.map((f) => readFile(join(dir, f), 'utf8')));
  return texts.flatMap((t) => t.split('\n')).filter((l) => l !== '');
}

export default async function setup(): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'pkm-ledger-'));
  process.env.PKM_SECRET_LEDGER = dir;
  return async () => {
    const secrets = [...new Set(await lines(dir, 'secrets.'))];
    const logs = await lines(dir, 'logs.');
    const found = findLeaks(secrets, logs);
    await rm(dir, { recursive: true, force: true });
    process.stdout.write(
      `secret scan: ${logs.length} log lines of spawned pkm processes, ${secrets.length} secrets, ${found.length} found\n`,
    );
    if (found.length > 0)
      throw new Error(`${found.length} secrets appear in the logs of spawned pkm processes`);
  };
}
