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
  return Object.freeze({
    server: parseServerUrl(text(raw, 'server')),
    tokenFile: text(raw, 'tokenFile'),
    caFile: text(raw, 'caFile'),
    pod: parsePodName(pod),
    namespace: parseNamespace(text(raw, 'namespace') ?? (env.POD_NAMESPACE || DEFAULT_NAMESPACE)),
    count: parseInteger(count, 'count', 1, 10_000, '4'),
    out,
    layout: oneOf(text(raw, 'layout') ?? 'lighthouse', LAYOUTS, 'layout'),
    kdf: oneOf(text(raw, 'kdf') ?? 'scrypt', ['scrypt', 'pbkdf2'] as const, 'kdf'),
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
