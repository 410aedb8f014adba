// EIP-2335 BLS keystores (https://eips.ethereum.org/EIPS/eip-2335), version 4:
// a KDF (scrypt or pbkdf2) turns the password into a 32-byte decryption key dk; the secret is
// encrypted with aes-128-ctr under dk[0:16]; the checksum is sha256(dk[16:32] || ciphertext).
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  pbkdf2,
  randomBytes,
  randomUUID,
  scrypt,
  timingSafeEqual,
} from 'node:crypto';
import { promisify } from 'node:util';
import { z } from 'zod';
import { PkmError } from '../errors.js';

export type KdfName = 'scrypt' | 'pbkdf2';

/** The parameters EIP-2335 recommends; tests pass cheaper ones. */
export const KDF_COSTS = {
  scrypt: { n: 262_144, r: 8, p: 1 },
  pbkdf2: { c: 262_144 },
} as const;

export interface KdfCosts {
  readonly scrypt: { readonly n: number; readonly r: number; readonly p: number };
  readonly pbkdf2: { readonly c: number };
}

const Hex = z.string().regex(/^[0-9a-fA-F]*$/);
/**
 * The most KDF work pkm opens. EIP-2335 recommends scrypt n=2^18, r=8, p=1 (256 MiB, about a
 * second here) and pbkdf2 c=2^18; these bounds leave 4x to 64x room above that, and keep a
 * hostile keystore from taking gigabytes or hours of a server's import (a coded refusal instead).
 */
export const KDF_LIMITS = {
  scryptMemoryBytes: 2 ** 30, // 128 * n * r
  scryptWork: 2 ** 25, // n * r * p
  scryptP: 16,
  pbkdf2C: 2 ** 24,
} as const;

const LIMITS_TEXT =
  'a KDF cost beyond what pkm opens (scrypt 128*n*r <= 1 GiB, n*r*p <= 2^25, p <= 16; pbkdf2 c <= 2^24)';

const ScryptKdf = z.object({
  function: z.literal('scrypt'),
  params: z
    .object({
      dklen: z.literal(32),
      n: z.number().int().positive(),
      r: z.number().int().positive(),
      p: z.number().int().positive(),
      salt: Hex,
    })
    .refine(
      ({ n, r, p }) =>
        128 * n * r <= KDF_LIMITS.scryptMemoryBytes &&
        n * r * p <= KDF_LIMITS.scryptWork &&
        p <= KDF_LIMITS.scryptP,
      { error: LIMITS_TEXT },
    ),
  message: z.literal(''),
});
const Pbkdf2Kdf = z.object({
  function: z.literal('pbkdf2'),
  params: z.object({
    dklen: z.literal(32),
    c: z.number().int().positive().max(KDF_LIMITS.pbkdf2C, { error: LIMITS_TEXT }),
    prf: z.literal('hmac-sha256'),
    salt: Hex,
  }),
  message: z.literal(''),
});
const KdfModule = z.discriminatedUnion('function', [ScryptKdf, Pbkdf2Kdf]);
export type KdfModule = z.infer<typeof KdfModule>;

const Keystore = z.object({
  crypto: z.object({
    kdf: KdfModule,
    checksum: z.object({ function: z.literal('sha256'), params: z.object({}), message: Hex }),
    cipher: z.object({
      function: z.literal('aes-128-ctr'),
      params: z.object({ iv: Hex }),
      message: Hex,
    }),
  }),
  description: z.string().optional(),
  pubkey: z
    .string()
    .regex(/^[0-9a-f]{96}$/)
    .optional(),
  path: z.string(),
  uuid: z.string(),
  version: z.literal(4),
});
export type Keystore = z.infer<typeof Keystore>;

const pbkdf2Async = promisify(pbkdf2);

function scryptAsync(
  pw: Buffer,
  salt: Buffer,
  opts: { N: number; r: number; p: number; maxmem: number },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(pw, salt, 32, opts, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/**
 * EIP-2335 password processing: NFKD normalisation, then the C0 (U+0000-U+001F), DEL (U+007F)
 * and C1 (U+0080-U+009F) control codes are removed; the rest is UTF-8.
 */
export function passwordBytes(password: string): Buffer {
  const isControl = (cp: number) => cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f);
  const kept = [...password.normalize('NFKD')].filter((c) => !isControl(c.codePointAt(0) ?? 0));
  return Buffer.from(kept.join(''), 'utf8');
}

/** A fresh KDF description with a random salt, at the given costs. */
export function newKdf(name: KdfName, costs: KdfCosts = KDF_COSTS): KdfModule {
  const salt = randomBytes(32).toString('hex');
  return name === 'scrypt'
    ? { function: 'scrypt', params: { dklen: 32, ...costs.scrypt, salt }, message: '' }
    : {
        function: 'pbkdf2',
        params: { dklen: 32, c: costs.pbkdf2.c, prf: 'hmac-sha256', salt },
        message: '',
      };
}

/** Runs the KDF (off the main thread: node:crypto's async scrypt and pbkdf2 use the libuv pool). */
export async function deriveKey(kdf: KdfModule, password: string): Promise<Buffer> {
  const salt = Buffer.from(kdf.params.salt, 'hex');
  const pw = passwordBytes(password);
  if (kdf.function === 'pbkdf2') return pbkdf2Async(pw, salt, kdf.params.c, 32, 'sha256');
  const { n, r, p } = kdf.params;
  // scrypt needs 128 * n * r bytes (256 MiB at EIP-2335's costs); allow that plus headroom.
  return scryptAsync(pw, salt, { N: n, r, p, maxmem: 128 * n * r * p + 32 * 1024 * 1024 });
}

function checksum(dk: Buffer, ciphertext: Buffer): Buffer {
  return createHash('sha256').update(dk.subarray(16, 32)).update(ciphertext).digest();
}

export interface KeystoreMeta {
  readonly pubkey: string;
  /** EIP-2334 path; empty for keys not derived from a mnemonic. */
  readonly path: string;
}

/** Encrypts a secret under an already derived key (one KDF may serve a batch; each gets its own IV). */
export function sealWithKey(
  secret: Uint8Array,
  kdf: KdfModule,
  dk: Buffer,
  meta: KeystoreMeta,
): Keystore {
  const iv = randomBytes(16);
  const cipher = createCipheriv('aes-128-ctr', dk.subarray(0, 16), iv);
  const ciphertext = Buffer.concat([cipher.update(secret), cipher.final()]);
  return {
    crypto: {
      kdf,
      checksum: {
        function: 'sha256',
        params: {},
        message: checksum(dk, ciphertext).toString('hex'),
      },
      cipher: {
        function: 'aes-128-ctr',
        params: { iv: iv.toString('hex') },
        message: ciphertext.toString('hex'),
      },
    },
    description: 'pkm validator signing key',
    pubkey: meta.pubkey.replace(/^0x/, ''),
    path: meta.path,
    uuid: randomUUID(),
    version: 4,
  };
}

export async function encryptKeystore(
  secret: Uint8Array,
  password: string,
  meta: KeystoreMeta,
  kdfName: KdfName = 'scrypt',
  costs: KdfCosts = KDF_COSTS,
): Promise<Keystore> {
  const kdf = newKdf(kdfName, costs);
  return sealWithKey(secret, kdf, await deriveKey(kdf, password), meta);
}

export function parseKeystore(json: unknown): Keystore {
  const parsed = Keystore.safeParse(json);
  if (!parsed.success) {
    throw new PkmError(
      'KEYSTORE_INVALID',
      `not an EIP-2335 version 4 keystore: ${parsed.error.issues[0]?.message ?? ''}`,
    );
  }
  return parsed.data;
}

/** Bytes one run of this KDF needs (scrypt: 128 * n * r * p; pbkdf2: next to nothing). */
export function kdfMemoryBytes(kdf: KdfModule): number {
  return kdf.function === 'scrypt' ? 128 * kdf.params.n * kdf.params.r * kdf.params.p : 0;
}

/**
 * The secret of a parsed keystore, given the key its KDF derived (possibly on another thread):
 * the checksum first, so a wrong password is KEYSTORE_PASSWORD, never garbage (EIP-2335).
 */
export function decryptWithKey(ks: Keystore, dk: Uint8Array): Uint8Array {
  const key = Buffer.from(dk);
  try {
    const ciphertext = Buffer.from(ks.crypto.cipher.message, 'hex');
    const expected = Buffer.from(ks.crypto.checksum.message, 'hex');
    const actual = checksum(key, ciphertext);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) {
      throw new PkmError(
        'KEYSTORE_PASSWORD',
        'wrong password for this keystore (EIP-2335 checksum mismatch)',
      );
    }
    const decipher = createDecipheriv(
      'aes-128-ctr',
      key.subarray(0, 16),
      Buffer.from(ks.crypto.cipher.params.iv, 'hex'),
    );
    const plain = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    const secret = Uint8Array.from(plain);
    plain.fill(0);
    return secret;
  } finally {
    key.fill(0);
  }
}

/** Decrypts a keystore; a wrong password is KEYSTORE_PASSWORD (the checksum says so), never garbage. */
export async function decryptKeystore(json: unknown, password: string): Promise<Uint8Array> {
  const ks = parseKeystore(json);
  return decryptWithKey(ks, await deriveKey(ks.crypto.kdf, password));
}
