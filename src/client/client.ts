// `pkm client`, the validator pod's init container: ask the server for this pod's keys, and
// leave them in --out as EIP-2335 keystores in the layout the validator client reads.
// It never writes next to keys the server no longer gives this pod: a validator must not start
// with a key that may be live elsewhere.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Interchange } from '../api/interchange.js';
import { podPath } from '../api/names.js';
import { AllocationAnswer } from '../api/pod-keys.js';
import { PkmError } from '../errors.js';
import { listFiles, readIfExists, writePrivateFile } from '../files.js';
import { profileCosts } from '../keys/kdf-profile.js';
import { type KdfCosts, parseKeystore } from '../keys/keystore.js';
import type { Logger } from '../log.js';
import { type ApiOptions, callServer } from './api.js';
import type { ClientConfig } from './config.js';
import { encryptAll, type PlainKey } from './encrypt.js';
import { LAYOUT_SPECS, type Layout, type LayoutSpec } from './layouts.js';
import { loadOrCreatePassword } from './password.js';
import { withRetry } from './retry.js';

/** The parsed `pkm client` flags (see config.ts), and test-only KDF costs. */
export interface ClientOptions extends Omit<ClientConfig, 'logLevel' | 'kdfProfile'> {
  /** Default standard: EIP-2335's costs. */
  readonly kdfProfile?: ClientConfig['kdfProfile'];
  /** Costs in place of the profile's, for tests only; the CLI always uses its profile's. */
  readonly costs?: KdfCosts;
}

export interface ClientSummary {
  readonly pod: string;
  readonly layout: Layout;
  readonly pubkeys: string[];
  /** Keys written now, and keys whose keystores were already there. */
  readonly written: string[];
  readonly kept: string[];
  /** Every file of the layout, relative to --out. */
  readonly files: string[];
}

/** The keys as the server hands them: the secret, and any slashing protection to import first. */
type HandedKey = PlainKey & { readonly protection?: Interchange };

/** EIP-3076: one interchange for all the keys that came with one. */
async function writeProtection(
  out: string,
  keys: readonly HandedKey[],
): Promise<string | undefined> {
  const parts = keys.flatMap((k) => (k.protection ? [k.protection] : []));
  const first = parts[0];
  if (!first) return undefined;
  const file = 'slashing_protection.json';
  const combined = { metadata: first.metadata, data: parts.flatMap((p) => p.data) };
  await writePrivateFile(join(out, file), `${JSON.stringify(combined, null, 2)}\n`);
  return file;
}

/** The server, the token to send and the CA to trust, as the flags gave them. */
export function connection(
  opts: Pick<ClientConfig, 'server' | 'tokenFile' | 'caFile'>,
): ApiOptions {
  return { server: opts.server, tokenFile: opts.tokenFile, caFile: opts.caFile };
}

async function requestKeys(opts: ClientOptions, log: Logger): Promise<HandedKey[]> {
  const path = podPath(opts.namespace, opts.pod);
  const answer = await withRetry(
    'asking the server for keys',
    () => callServer(connection(opts), 'POST', path, { count: opts.count }),
    { timeoutMs: opts.timeoutMs, log },
  );
  const parsed = AllocationAnswer.safeParse(answer);
  if (!parsed.success || parsed.data.pod !== opts.pod || parsed.data.keys.length !== opts.count) {
    throw new PkmError(
      'SERVER_FAILED',
      `the server's answer is not ${opts.count} keys for pod ${opts.pod}`,
    );
  }
  return parsed.data.keys.map((k) => ({
    pubkey: k.pubkey,
    secretKey: Uint8Array.from(Buffer.from(k.secretKey.slice(2), 'hex')),
    path: k.path ?? '',
    ...(k.slashingProtection === undefined ? {} : { protection: k.slashingProtection }),
  }));
}

export async function readKeystore(path: string) {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new PkmError('OUT_DIR_CONFLICT', `${path} is not a readable keystore; remove it`, {
      cause,
    });
  }
  return parseKeystore(json);
}

/** Pubkeys whose keystores are in --out already; a keystore that names another key is refused. */
export async function existingKeys(out: string, spec: LayoutSpec): Promise<string[]> {
  const found: string[] = [];
  for (const file of await listFiles(out, spec.keystoreDir)) {
    const pubkey = spec.keystorePattern.exec(file)?.[1];
    if (pubkey === undefined) continue;
    const keystore = await readKeystore(join(out, file));
    if (`0x${keystore.pubkey ?? ''}` !== pubkey) {
      throw new PkmError('OUT_DIR_CONFLICT', `${file} holds a keystore for another key; remove it`);
    }
    found.push(pubkey);
  }
  return found;
}

/** The password files that exist must hold this password: the keystores were sealed with it. */
async function checkPasswordFiles(
  out: string,
  spec: LayoutSpec,
  pubkeys: readonly string[],
  password: string,
) {
  const paths = [...pubkeys.map((pk) => spec.passwordPath(pk)), spec.sharedPasswordPath];
  for (const path of paths) {
    if (path === undefined) continue;
    const text = await readIfExists(join(out, path));
    if (text !== undefined && text !== password) {
      throw new PkmError(
        'OUT_DIR_CONFLICT',
        `${path} holds another password than --password-file: the keystores in --out were written with another password`,
      );
    }
  }
}

export async function runClient(opts: ClientOptions, log: Logger): Promise<ClientSummary> {
  const spec = LAYOUT_SPECS[opts.layout];
  const keys = await requestKeys(opts, log);
  const pubkeys = keys.map((k) => k.pubkey);

  // Every check before the first write: a refusal changes nothing in --out.
  const existing = await existingKeys(opts.out, spec);
  const foreign = existing.filter((pk) => !pubkeys.includes(pk));
  if (foreign.length > 0) {
    throw new PkmError(
      'OUT_DIR_CONFLICT',
      `--out holds keystores the server no longer assigns to pod ${opts.pod} (${foreign.join(', ')}); ` +
        'they may be live elsewhere: remove them before this pod starts',
    );
  }
  if (existing.length > 0 && (await readIfExists(opts.passwordFile)) === undefined) {
    throw new PkmError(
      'OUT_DIR_CONFLICT',
      `--out holds keystores, but --password-file ${opts.passwordFile} is missing: they were written with its password`,
    );
  }
  const { password, created } = await loadOrCreatePassword(opts.passwordFile);
  if (created) log.info({ passwordFile: opts.passwordFile }, 'made a new keystore password');
  await checkPasswordFiles(opts.out, spec, pubkeys, password);

  const missing = keys.filter((k) => !existing.includes(k.pubkey));
  const keystores = await encryptAll(missing, password, {
    kdf: opts.kdf,
    concurrency: opts.concurrency,
    sharedKdf: opts.sharedKdf,
    costs: opts.costs ?? profileCosts(opts.kdfProfile ?? 'standard'),
  });
  const shared = spec.sharedPasswordPath && join(opts.out, spec.sharedPasswordPath);
  if (shared && (await readIfExists(shared)) === undefined)
    await writePrivateFile(shared, password);
  for (const [i, keystore] of keystores.entries()) {
    const pubkey = missing[i]?.pubkey ?? '';
    // The password first: a keystore on disk always has its password beside it.
    const passwordPath = spec.passwordPath(pubkey);
    if (passwordPath !== undefined) await writePrivateFile(join(opts.out, passwordPath), password);
    await writePrivateFile(
      join(opts.out, spec.keystorePath(pubkey)),
      `${JSON.stringify(keystore, null, 2)}\n`,
    );
  }
  for (const pubkey of existing) {
    const passwordPath = spec.passwordPath(pubkey);
    if (
      passwordPath !== undefined &&
      (await readIfExists(join(opts.out, passwordPath))) === undefined
    ) {
      await writePrivateFile(join(opts.out, passwordPath), password);
    }
  }

  const protection = await writeProtection(opts.out, keys);
  const files = [
    ...pubkeys.flatMap((pk) => [spec.keystorePath(pk), spec.passwordPath(pk)]),
    protection,
  ];
  return {
    pod: opts.pod,
    layout: opts.layout,
    pubkeys,
    written: missing.map((k) => k.pubkey),
    kept: existing,
    files: [...files, spec.sharedPasswordPath].filter((f): f is string => f !== undefined),
  };
}
