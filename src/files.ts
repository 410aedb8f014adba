// Private files: folders 0700, files 0600, each written to a temp name in its folder and
// renamed into place, so a reader never sees half a file and a crash leaves none behind.
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { errnoOf, PkmError } from './errors.js';

/** Creates `dir` and any missing parents as 0700 (whatever the umask); leaves existing ones. */
export async function mkdirPrivate(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (first === undefined) return;
  // mkdir's mode passes through the umask: set it on each folder this call created.
  for (let d = dir; ; d = dirname(d)) {
    await chmod(d, 0o700);
    if (d === first || dirname(d) === d) break;
  }
}

export async function writePrivateFile(path: string, data: string): Promise<void> {
  await mkdirPrivate(dirname(path));
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await open(tmp, 'wx', 0o600);
  try {
    await file.writeFile(data);
    await file.sync();
  } catch (err) {
    await file.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await file.close();
  await rename(tmp, path);
}

/** The file's text, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/** Every file below `dir`, as paths relative to `root` with '/' separators; [] if it is missing. */
export async function listFiles(root: string, dir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(join(root, dir), { recursive: true });
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return [];
    throw err;
  }
  return entries.map((e) =>
    relative(root, join(root, dir, e))
      .split(sep)
      .join('/'),
  );
}

/**
 * Reads a secret (a mnemonic, a password) from a file. The trailing newline an editor leaves is
 * not part of the secret. The message names the flag, never the content.
 */
export async function readSecretFile(path: string, flag: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    const reason = errnoOf(err) ?? 'unreadable';
    throw new PkmError(
      'INVALID_CONFIG',
      `--${flag} names a file that cannot be read (${reason}): ${path}, e.g. --${flag} /etc/pkm/secret`,
    );
  }
}
