// The keystore password: read from --password-file, or made once and kept there.
import { randomBytes } from 'node:crypto';
import { PkmError } from '../errors.js';
import { readIfExists, readSecretFile, writePrivateFile } from '../files.js';

/** 32 random bytes, base64url: 43 printable characters, no newline or control code. */
function newPassword(): string {
  return randomBytes(32).toString('base64url');
}

export async function loadOrCreatePassword(
  path: string,
): Promise<{ password: string; created: boolean }> {
  if ((await readIfExists(path)) === undefined) {
    await writePrivateFile(path, newPassword());
    return { password: await readSecretFile(path, 'password-file'), created: true };
  }
  const password = await readSecretFile(path, 'password-file');
  if (password === '')
    throw new PkmError(
      'INVALID_CONFIG',
      `--password-file ${path} is empty; put a password in it, or remove it to have one made`,
    );
  return { password, created: false };
}
