// Where `pkm keys import` finds keystores and their passwords (the rules its --help states):
//   - a FILE: one keystore;
//   - a DIR in one of the five layouts pkm client writes (DESIGN.md "Client output layouts"):
//     every keystore the layout names, with the layout's own password files;
//   - any other DIR (staking-deposit-cli's validator_keys/): every `keystore*.json` in it.
// A password comes from --password-file (one for all), else --passwords-dir (`<keystore file
// name without .json>.txt`), else the layout's own secrets. A keystore without one fails alone.
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import type { ImportFailure, ImportSource } from './allocation/import-keys.js';
import { LAYOUT_SPECS, LAYOUTS } from './client/layouts.js';
import { errnoOf, messageOf, PkmError } from './errors.js';

export interface PasswordFlags {
  /** One password for every keystore. */
  readonly passwordFile: string | undefined;
  /** `<keystore file name without .json>.txt` per keystore. */
  readonly passwordsDir: string | undefined;
}

interface Found {
  readonly file: string;
  /** The layout's own password file for it, if it has one. */
  readonly layoutPassword: string | undefined;
}

/** Files under `dir`, as paths relative to `root`, two levels deep (the layouts go no deeper). */
async function filesUnder(root: string, dir: string, depth: number): Promise<string[]> {
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(join(root, dir), { withFileTypes: true });
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return [];
    throw err;
  }
  const out: string[] = [];
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory() && depth > 0) out.push(...(await filesUnder(root, path, depth - 1)));
    else if (e.isFile()) out.push(path);
  }
  return out;
}

/** The keystores of one of pkm's layouts in `dir`, each with the layout's password file. */
async function layoutKeystores(dir: string): Promise<Found[]> {
  const found = new Map<string, Found>();
  for (const layout of LAYOUTS) {
    const spec = LAYOUT_SPECS[layout];
    for (const path of await filesUnder(dir, spec.keystoreDir, 1)) {
      const pubkey = spec.keystorePattern.exec(path)?.[1];
      if (pubkey === undefined) continue;
      const password = spec.passwordPath(pubkey) ?? spec.sharedPasswordPath;
      found.set(path, {
        file: join(dir, path),
        layoutPassword: password === undefined ? undefined : join(dir, password),
      });
    }
  }
  return [...found.values()];
}

/** A folder of keystores as staking-deposit-cli writes them (keystore-m_12381_3600_<i>_0_0-<time>.json). */
async function plainKeystores(dir: string): Promise<Found[]> {
  const names = (await readdir(dir)).filter((n) => /^keystore.*\.json$/.test(n)).sort();
  return names.map((n) => ({ file: join(dir, n), layoutPassword: undefined }));
}

async function findKeystores(paths: readonly string[]): Promise<Found[]> {
  const all: Found[] = [];
  for (const path of paths) {
    let isDir: boolean;
    try {
      isDir = (await stat(path)).isDirectory();
    } catch (err) {
      throw new PkmError('INVALID_CONFIG', `--keystores ${path}: ${messageOf(err)}`);
    }
    if (!isDir) {
      all.push({ file: path, layoutPassword: undefined });
      continue;
    }
    const inLayout = await layoutKeystores(path);
    all.push(...(inLayout.length > 0 ? inLayout : await plainKeystores(path)));
  }
  const unique = new Map(all.map((f) => [f.file, f]));
  return [...unique.values()];
}

/** Keystores are about 1 KiB; anything far larger is not one. */
const MAX_KEYSTORE_BYTES = 64 * 1024;
const MAX_PASSWORD_BYTES = 64 * 1024;

/**
 * A keystore's or a password's file: a regular file, and a small one. A FIFO would block the
 * import for ever, and /dev/zero (or a huge file) would fill its memory.
 */
async function readSmallFile(file: string, max: number): Promise<string> {
  const info = await stat(file);
  if (!info.isFile()) throw new Error('not a regular file');
  if (info.size > max) throw new Error(`larger than ${max} bytes`);
  return readFile(file, 'utf8');
}

async function readPassword(file: string): Promise<string> {
  // EIP-2335 strips control characters from passwords, a trailing newline among them.
  return readSmallFile(file, MAX_PASSWORD_BYTES);
}

/**
 * Every keystore the paths name, with its password; files that cannot be read or parsed, or
 * have no password, come back as failures naming them (the rest still import).
 */
export async function readImportSources(
  paths: readonly string[],
  passwords: PasswordFlags,
): Promise<{ sources: ImportSource[]; failed: ImportFailure[] }> {
  const shared =
    passwords.passwordFile === undefined
      ? undefined
      : await readPassword(passwords.passwordFile).catch((err: unknown) => {
          throw new PkmError(
            'INVALID_CONFIG',
            `--password-file ${passwords.passwordFile}: ${messageOf(err)}`,
          );
        });
  const found = await findKeystores(paths);
  if (found.length === 0)
    throw new PkmError(
      'INVALID_CONFIG',
      `no keystores in ${paths.join(', ')}: give keystore files, a folder of keystore*.json, or a folder pkm client wrote`,
    );
  const sources: ImportSource[] = [];
  const failed: ImportFailure[] = [];
  for (const { file, layoutPassword } of found) {
    const name = relative(process.cwd(), file) || file;
    let text: string;
    try {
      text = await readSmallFile(file, MAX_KEYSTORE_BYTES);
    } catch (err) {
      failed.push({ source: name, code: 'KEYSTORE_INVALID', message: messageOf(err) });
      continue;
    }
    let keystore: unknown;
    try {
      keystore = JSON.parse(text);
    } catch (err) {
      failed.push({
        source: name,
        code: 'KEYSTORE_INVALID',
        message: `not JSON: ${messageOf(err)}`,
      });
      continue;
    }
    const perKey =
      passwords.passwordsDir === undefined
        ? layoutPassword
        : join(passwords.passwordsDir, `${basename(file).replace(/\.json$/, '')}.txt`);
    let password = shared;
    if (password === undefined && perKey !== undefined)
      password = await readPassword(perKey).catch(() => undefined);
    if (password === undefined) {
      failed.push({
        source: name,
        code: 'KEYSTORE_PASSWORD',
        message: `no password for it: ${perKey === undefined ? 'pass --password-file or --passwords-dir' : `${perKey} cannot be read`}`,
      });
      continue;
    }
    sources.push({ name, keystore, password });
  }
  return { sources, failed };
}
