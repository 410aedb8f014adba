// The suite's secret ledger: every secret a test sees (secret keys handed out, KEKs, tokens,
// mnemonics) and every log line a spawned `pkm` prints are appended under one folder, which
// vitest's global setup (log-scan.ts) makes before the run and scans after it: no secret may
// appear in any captured log.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.env.PKM_SECRET_LEDGER;

/** Remembers a secret (hex with or without 0x, or any text) for the end-of-run scan. */
export function rememberSecret(value: string): void {
  if (dir === undefined || value === '') return;
  appendFileSync(join(dir, `secrets.${process.pid}.txt`), `${value}\n`);
}

/** Keeps a log line of a spawned process for the end-of-run scan. */
export function keepLogLine(line: string): void {
  if (dir === undefined) return;
  appendFileSync(join(dir, `logs.${process.pid}.txt`), `${line}\n`);
}
