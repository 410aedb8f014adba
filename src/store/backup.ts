// `pkm db backup` and `pkm db restore`, for a stopped server's store. A backup holds every
// entry of the store as it is on disk: secrets stay sealed, so a backup is no more secret than
// the data dir, and it opens only with the KEK the store used when it was taken.
//
// Format (JSON lines): a header {"format":"pkm-backup","version":1,"schemaVersion","entries",
// "sha256"}, then one [key, value] per line. The hash covers those lines, so a truncated or
// altered file is refused before anything is written.
import { createHash } from 'node:crypto';
import { open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Level } from 'level';
import { z } from 'zod';
import { errnoOf, PkmError } from '../errors.js';
import { writePrivateFile } from '../files.js';
import { MetaKey } from './buckets.js';
import { checkStore } from './check.js';
import { Store } from './store.js';
import { SYNCED } from './sync.js';

const FORMAT = 'pkm-backup';
const VERSION = 1;

const HeaderSchema = z.object({
  format: z.string(),
  version: z.number().int(),
  schemaVersion: z.number().int(),
  entries: z.number().int().nonnegative(),
  sha256: z.string(),
});
type Header = z.infer<typeof HeaderSchema>;

export interface BackupResult {
  readonly entries: number;
  readonly schemaVersion: number;
  readonly sha256: string;
}

export interface RestoreResult extends BackupResult {
  /** Free and cooling keys now fenced: what happened to them after the backup is unknown. */
  readonly fenced: number;
}

/** What a backup cannot know, said by `pkm db restore` (DESIGN.md "Safety rules"). */
export const RESTORE_CAVEATS = [
  'keys handed to pods after the backup (free or missing here): their holders must re-assert (heartbeats)',
  'keys derived after the backup: the next derivation index may be behind; reported keys move it on',
  'keys retired after the backup (slashed, exited, by hand): fenced here, but only the liveness gate (--beacon-url) tells a slashed or exited one',
  'slashing protection uploaded after the backup: fenced keys get a fence at the current slot (with --network)',
] as const;

/** Writes a consistent copy of the store (Store.open takes its lock: the server must be stopped). */
export async function backupStore(dataDir: string, out: string): Promise<BackupResult> {
  const store = await Store.open(dataDir);
  try {
    const entries = await store.rawEntries();
    const lines = entries.map((e) => JSON.stringify(e));
    const sha256 = createHash('sha256').update(lines.join('\n')).digest('hex');
    const schemaVersion = Number(await store.getMeta(MetaKey.schemaVersion));
    const header: Header = {
      format: FORMAT,
      version: VERSION,
      schemaVersion,
      entries: lines.length,
      sha256,
    };
    await writePrivateFile(out, `${[JSON.stringify(header), ...lines].join('\n')}\n`);
    return { entries: lines.length, schemaVersion, sha256 };
  } finally {
    await store.close();
  }
}

function parseBackup(
  text: string,
  source: string,
): { header: Header; entries: Array<[string, string]> } {
  const bad = (why: string) =>
    new PkmError('INVALID_BACKUP', `${source} is not a usable pkm backup: ${why}`);
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  let json: unknown;
  try {
    json = JSON.parse(lines[0] ?? '');
  } catch {
    throw bad('no header line');
  }
  const parsedHeader = HeaderSchema.safeParse(json);
  if (!parsedHeader.success) throw bad('its header line is not a pkm-backup header');
  const header: Header = parsedHeader.data;
  if (header.format !== FORMAT || header.version !== VERSION)
    throw bad('not format pkm-backup version 1');
  const body = lines.slice(1);
  if (body.length !== header.entries)
    throw bad(`${body.length} entries, the header says ${header.entries}`);
  if (createHash('sha256').update(body.join('\n')).digest('hex') !== header.sha256)
    throw bad('its checksum does not match (truncated or altered)');
  const entries = body.map((line) => {
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch {
      throw bad('an entry is not JSON');
    }
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string' || typeof e[1] !== 'string')
      throw bad('an entry is not [key, value]');
    return [e[0], e[1]] as [string, string];
  });
  return { header, entries };
}

/** Whether a folder is empty or absent (a restore or copy target). */
export async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return true;
    throw err;
  }
}

/**
 * Restores a backup into `dataDir`, which must not hold anything. The entries go into a folder
 * beside it, are checked (every invariant), and the folder is renamed into place: a crash
 * leaves either no store or the whole one.
 */
export async function restoreStore(
  dataDir: string,
  from: string,
  /** Runs on the restored store before it is checked and put in place; returns keys fenced. */
  prepare: (store: Store) => Promise<number>,
): Promise<RestoreResult> {
  let text: string;
  try {
    text = await readFile(from, 'utf8');
  } catch (err) {
    throw new PkmError(
      'INVALID_CONFIG',
      `--from ${from} cannot be read (${errnoOf(err) ?? 'error'})`,
    );
  }
  const { header, entries } = parseBackup(text, from);
  if (!(await isEmptyDir(dataDir)))
    throw new PkmError(
      'RESTORE_TARGET_NOT_EMPTY',
      `--data-dir ${dataDir} is not empty: restore into a new folder (nothing was changed)`,
    );
  const staging = join(dirname(dataDir), `.${basename(dataDir)}.restoring`);
  await rm(staging, { recursive: true, force: true });
  const db = new Level<string, string>(staging, { keyEncoding: 'utf8', valueEncoding: 'utf8' });
  await db.open();
  try {
    for (let i = 0; i < entries.length; i += 5_000)
      await db.batch(
        entries.slice(i, i + 5_000).map(([key, value]) => ({ type: 'put' as const, key, value })),
        SYNCED,
      );
  } finally {
    await db.close();
  }
  const store = await Store.open(staging);
  let problems: string[];
  let fencedCount: number;
  try {
    fencedCount = await prepare(store);
    problems = (await checkStore(store)).problems;
  } finally {
    await store.close();
  }
  if (problems.length > 0) {
    await rm(staging, { recursive: true, force: true });
    throw new PkmError(
      'INVALID_BACKUP',
      `${from} restores to a store that fails its checks: ${problems[0]}`,
    );
  }
  await rm(dataDir, { recursive: true, force: true }); // empty, or not there
  await rename(staging, dataDir);
  // The rename is durable once the parent folder is synced: only then is "restored" true.
  const parent = await open(dirname(dataDir), 'r');
  try {
    await parent.sync();
  } finally {
    await parent.close();
  }
  return {
    entries: entries.length,
    schemaVersion: header.schemaVersion,
    sha256: header.sha256,
    fenced: fencedCount,
  };
}
