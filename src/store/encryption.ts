// Encryption at rest. Each secret key is sealed with AES-256-GCM under the store's data key
// (DEK), with its pubkey as additional data, so a ciphertext only opens in its own record. The
// DEK itself is stored in `meta`, wrapped (AES-256-GCM) by the key-encryption key (KEK), which
// lives outside the store (--kek-file). Records and the wrapped DEK name the KEK by its id.
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errnoOf, PkmError } from '../errors.js';
import { readIfExists, writePrivateFile } from '../files.js';
import { openGcm, sealGcm } from './gcm.js';
import type { SealedSecret } from './records.js';
import type { SealedOf, SecretCodec } from './secret-codec.js';

const KEY_BYTES = 32;

/** A short, stable name for a KEK that reveals nothing about it. */
export function kekId(kek: Buffer): string {
  return createHash('sha256').update('pkm-kek-id:').update(kek).digest('hex').slice(0, 16);
}

/** 32 bytes, as 64 hex digits or as base64. */
export function parseKek(text: string, source: string): Buffer {
  const t = text.trim();
  const bytes = /^(0x)?[0-9a-fA-F]{64}$/.test(t)
    ? Buffer.from(t.replace(/^0x/, ''), 'hex')
    : Buffer.from(t, 'base64');
  if (bytes.length !== KEY_BYTES) {
    throw new PkmError(
      'INVALID_CONFIG',
      `${source} must hold 32 random bytes, as hex or base64 (e.g. openssl rand -hex 32)`,
    );
  }
  return bytes;
}

export interface KekSource {
  readonly kek: Buffer;
  /** True when the KEK was made just now, next to the data. */
  readonly generated: boolean;
}

/**
 * --kek-file, else `<dataDir>/kek`, made once (0600) when the store has no data key yet. A
 * store that has one is never given a new KEK: that would lock its secrets away.
 */
export async function loadKek(
  dataDir: string,
  kekFile: string | undefined,
  hasDataKey = false,
): Promise<KekSource> {
  if (kekFile !== undefined) {
    let text: string;
    try {
      text = await readFile(kekFile, 'utf8');
    } catch (err) {
      throw new PkmError(
        'INVALID_CONFIG',
        `--kek-file ${kekFile} cannot be read (${errnoOf(err) ?? 'error'})`,
      );
    }
    return { kek: parseKek(text, `--kek-file ${kekFile}`), generated: false };
  }
  const path = join(dataDir, 'kek');
  const existing = await readIfExists(path);
  if (existing !== undefined) return { kek: parseKek(existing, path), generated: false };
  if (hasDataKey) {
    throw new PkmError(
      'WRONG_KEK',
      `this store is encrypted, and ${path} is missing: pass its KEK with --kek-file`,
    );
  }
  const kek = randomBytes(KEY_BYTES);
  await writePrivateFile(path, `${kek.toString('hex')}\n`);
  return { kek, generated: true };
}

/** A KEK loader for Store.open: --kek-file, or the data dir's own KEK (see loadKek). */
export function kekLoader(dataDir: string, kekFile?: string, onGenerated?: () => void) {
  return async (hasDataKey: boolean): Promise<Buffer> => {
    const source = await loadKek(dataDir, kekFile, hasDataKey);
    if (source.generated) onGenerated?.();
    return source.kek;
  };
}

const DEK_AAD = Buffer.from('pkm-data-key');

export interface WrappedKey {
  readonly kek: string;
  readonly data: string;
}

export function wrapDataKey(dek: Buffer, kek: Buffer): WrappedKey {
  return { kek: kekId(kek), data: sealGcm(kek, dek, DEK_AAD).toString('hex') };
}

/** The data key, or WRONG_KEK: the store is left as it is. */
export function unwrapDataKey(wrapped: WrappedKey, kek: Buffer): Buffer {
  const dek =
    wrapped.kek === kekId(kek)
      ? openGcm(kek, Buffer.from(wrapped.data, 'hex'), DEK_AAD)
      : undefined;
  if (!dek) {
    throw new PkmError(
      'WRONG_KEK',
      `this store's data key was sealed with KEK ${wrapped.kek}, not with the KEK given (${kekId(kek)}): pass the right --kek-file`,
    );
  }
  return dek;
}

export function newDataKey(): Buffer {
  return randomBytes(KEY_BYTES);
}

/**
 * The data keys a store's secrets are sealed with, by the id of the KEK that each one belongs
 * to (a record names it in `kek`). One key seals; during a KEK rotation the ring also holds the
 * old data key, so every record opens while the rotation moves them over.
 */
export class KeyRing implements SecretCodec {
  private readonly keys = new Map<string, Buffer>();
  private sealing: string;
  private sealingKey: Buffer;

  constructor(kek: string, dek: Buffer) {
    this.keys.set(kek, dek);
    this.sealing = kek;
    this.sealingKey = dek;
  }

  /** The id of the KEK whose data key seals new secrets. */
  get sealingKek(): string {
    return this.sealing;
  }

  /** Adds a data key; `seal` makes it the one new secrets are sealed with. */
  add(kek: string, dek: Buffer, seal = false): void {
    this.keys.set(kek, dek);
    if (seal) {
      this.sealing = kek;
      this.sealingKey = dek;
    }
  }

  /** A data key of the ring, by its KEK's id (to wrap it under a new KEK). */
  dataKey(kek: string): Buffer | undefined {
    return this.keys.get(kek);
  }

  /** Forgets every data key but the sealing one (a finished rotation). */
  retireOthers(): void {
    for (const id of [...this.keys.keys()]) if (id !== this.sealing) this.keys.delete(id);
  }

  seal(secret: Uint8Array, pubkey: string): SealedSecret {
    return {
      alg: 'aes-256-gcm',
      kek: this.sealing,
      data: sealGcm(this.sealingKey, Buffer.from(secret), secretAad(pubkey)).toString('hex'),
    };
  }

  /** Also opens records an older store kept as hex. */
  open(sealed: SealedSecret, pubkey: string): Uint8Array {
    if (sealed.alg === 'hex') {
      // Buffer.from stops at the first character that is not hex: a damaged record would
      // open to a shorter secret, not fail.
      if (!LEGACY_SECRET.test(sealed.data))
        throw new PkmError(
          'STORE_CORRUPT',
          `the stored secret of ${pubkey} is not a secret key's 64 hex digits`,
        );
      return Uint8Array.from(Buffer.from(sealed.data, 'hex'));
    }
    const dek = this.keys.get(sealed.kek ?? this.sealing);
    const plain =
      sealed.alg === 'aes-256-gcm' && dek
        ? openGcm(dek, Buffer.from(sealed.data, 'hex'), secretAad(pubkey))
        : undefined;
    if (!plain) throw doesNotOpen(pubkey);
    const secret = Uint8Array.from(plain);
    plain.fill(0);
    return secret;
  }

  openMany(list: readonly SealedOf[]): Uint8Array[] {
    const opened: Uint8Array[] = [];
    try {
      for (const { sealed, pubkey } of list) opened.push(this.open(sealed, pubkey));
    } catch (err) {
      for (const secret of opened) secret.fill(0);
      throw err;
    }
    return opened;
  }
}

/** A secret as an earlier build kept it: a BLS secret key (32 bytes) in hex. */
const LEGACY_SECRET = /^[0-9a-fA-F]{64}$/;

function doesNotOpen(pubkey: string): PkmError {
  return new PkmError(
    'STORE_CORRUPT',
    `the secret of ${pubkey} does not open with this store's data key`,
  );
}

function secretAad(pubkey: string): Buffer {
  return Buffer.from(pubkey, 'utf8');
}

/** A ring of one data key. */
export function gcmCodec(dek: Buffer, kek: string): KeyRing {
  return new KeyRing(kek, dek);
}

/** For a store opened without its KEK (checks, exports): reading works, secrets do not. */
export const lockedCodec: SecretCodec = {
  seal() {
    throw locked();
  },
  open() {
    throw locked();
  },
  openMany() {
    throw locked();
  },
};

function locked(): PkmError {
  return new PkmError(
    'INVALID_CONFIG',
    'this store is encrypted: open it with its KEK (--kek-file)',
  );
}
