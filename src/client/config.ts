// `pkm client`'s config (and `pkm agent`'s, which shares its flags). Each error names the flag
// to set and gives an example.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_NAMESPACE, parseNamespace, parsePodName } from '../api/names.js';
import {
  bad,
  oneOf,
  parseDuration,
  parseInteger,
  parseServerUrl,
  type RawFlags,
  text,
} from '../config.js';
import { KDF_PROFILES, type KdfProfile, PROFILE_KDF } from '../keys/kdf-profile.js';
import type { KdfName } from '../keys/keystore.js';
import { type LogLevel, parseLogLevel } from '../log.js';
import { LAYOUTS, type Layout } from './layouts.js';

export interface ClientConfig {
  readonly server: URL;
  /** Bearer token (the projected ServiceAccount token), read at each request. */
  readonly tokenFile?: string | undefined;
  /** PEM CA bundle for the server's certificate. */
  readonly caFile?: string | undefined;
  readonly pod: string;
  /** The pod's namespace: --namespace, else $POD_NAMESPACE (downward API), else default. */
  readonly namespace: string;
  readonly count: number;
  readonly out: string;
  readonly layout: Layout;
  readonly kdf: KdfName;
  /** The KDF's cost: EIP-2335's (standard), or the lowest every client opens (fast). */
  readonly kdfProfile: KdfProfile;
  readonly passwordFile: string;
  readonly timeoutMs: number;
  readonly concurrency: number;
  readonly sharedKdf: boolean;
  readonly logLevel: LogLevel;
}

/** `pkm client` flags; the pod name falls back to $POD_NAME (the downward API sets it). */
export function parseClientConfig(
  raw: RawFlags,
  env: NodeJS.ProcessEnv = process.env,
): ClientConfig {
  const out = text(raw, 'out');
  if (out === undefined)
    throw bad('out', 'is required: the folder the validator client reads', '/data/validator');
  const count = text(raw, 'count');
  if (count === undefined) throw bad('count', 'is required: how many keys this pod runs', '4');
  const pod = text(raw, 'pod') ?? env.POD_NAME;
  if (pod === undefined || pod === '') {
    throw bad('pod', 'is required (or set POD_NAME from the downward API)', '"$(POD_NAME)"');
  }
  const { kdf, kdfProfile } = parseKdf(raw);
  return Object.freeze({
    server: parseServerUrl(text(raw, 'server')),
    tokenFile: text(raw, 'tokenFile'),
    caFile: text(raw, 'caFile'),
    pod: parsePodName(pod),
    namespace: parseNamespace(text(raw, 'namespace') ?? (env.POD_NAMESPACE || DEFAULT_NAMESPACE)),
    count: parseInteger(count, 'count', 1, 10_000, '4'),
    out,
    layout: oneOf(text(raw, 'layout') ?? 'lighthouse', LAYOUTS, 'layout'),
    kdf,
    kdfProfile,
    passwordFile: text(raw, 'passwordFile') ?? join(out, 'password.txt'),
    timeoutMs: parseDuration(text(raw, 'timeout') ?? '10m', 'timeout'),
    concurrency: parseInteger(
      text(raw, 'concurrency') ?? String(availableParallelism()),
      'concurrency',
      1,
      64,
      '2',
    ),
    sharedKdf: raw.sharedKdf === true || raw.sharedKdf === 'true',
    logLevel: parseLogLevel(text(raw, 'logLevel')),
  });
}

/**
 * --kdf-profile and --kdf. The fast profile writes pbkdf2: Nimbus opens scrypt only at EIP-2335's
 * own costs (src/keys/kdf-profile.ts), so there is no cheap scrypt, and asking for both is refused.
 */
function parseKdf(raw: RawFlags): { kdf: KdfName; kdfProfile: KdfProfile } {
  const kdfProfile = oneOf(text(raw, 'kdfProfile') ?? 'standard', KDF_PROFILES, 'kdf-profile');
  const given = text(raw, 'kdf');
  const kdf =
    given === undefined
      ? PROFILE_KDF[kdfProfile]
      : oneOf(given, ['scrypt', 'pbkdf2'] as const, 'kdf');
  if (kdfProfile === 'fast' && kdf !== PROFILE_KDF.fast) {
    throw bad(
      'kdf',
      `is ${kdf}, but --kdf-profile fast writes pbkdf2 (Nimbus opens scrypt only at EIP-2335's cost, so scrypt cannot be fast); leave --kdf out`,
      'pbkdf2',
    );
  }
  return { kdf, kdfProfile };
}
