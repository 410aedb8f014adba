// Typed, validated, frozen config from the parsed flags (commander has already merged PKM_* env).
// Each error names the flag to set and gives an example.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_NAMESPACE, parseNamespace, parsePodName } from './api/names.js';
import { LAYOUTS, type Layout } from './client/layouts.js';
import { type DepositSettings, parseDepositSettings, parseNetwork } from './deposit/config.js';
import type { Network } from './deposit/networks.js';
import { PkmError } from './errors.js';
import type { KdfName } from './keys/keystore.js';
import { type LogLevel, parseLogLevel } from './log.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export interface ServerConfig {
  readonly dataDir: string;
  /** Derive keys from the BIP-39 mnemonic in this file (read at start, never stored). */
  readonly mnemonicFile: string | undefined;
  readonly mnemonicPassphraseFile: string | undefined;
  readonly listen: ListenAddress;
  readonly reuseDelayMs: number;
  readonly maxKeysPerPod: number;
  readonly maxTotalKeys: number | undefined;
  readonly logLevel: LogLevel;
  /** The chain (--network), with its genesis root; undefined without --network. */
  readonly network: Network | undefined;
  /**
   * genesis_validators_root of the chain (EIP-3076): --network's, or --genesis-validators-root.
   * Every slashing-protection upload is checked against it; undefined: not configured.
   */
  readonly genesisValidatorsRoot: string | undefined;
  /** Deposit data and sending; undefined without --network and credentials (see deposit/config). */
  readonly deposits: DepositSettings | undefined;
  /** Namespaces that count (--namespace, repeatable); empty: all. */
  readonly namespaces: readonly string[];
  /** The pod watcher (--kube): the webhook's fallback. */
  readonly kube:
    | {
        readonly kubeconfig: string | undefined;
        readonly labelSelector: string | undefined;
        readonly graceMs: number;
      }
    | undefined;
  /** The key-encryption key (32 bytes, hex or base64); default: `<data-dir>/kek`, made once. */
  readonly kekFile: string | undefined;
  /** After a start, how long keys held before stay with their pods (heartbeats re-assert). */
  readonly resyncWindowMs: number;
  /** Indexes past the next one searched for a key a pod reports and the store lost. */
  readonly derivationLookahead: number;
  /** A beacon node to ask before a cooled key moves to another pod (liveness gate). */
  readonly beaconUrl: string | undefined;
  /** Serve HTTPS with these PEM files (Kubernetes calls webhooks over TLS only). */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly auth: AuthConfig;
  /** For --kube and --token-review; default: the in-cluster service account. */
  readonly kubeconfig: string | undefined;
  /** Allocation requests per minute per caller; 0: unlimited. */
  readonly rateLimitPerMinute: number;
}

export interface AuthConfig {
  /** Admin tokens, one per line. */
  readonly tokenFile: string | undefined;
  /** Pods authenticate with TokenReview (in-cluster, or --kubeconfig). */
  readonly tokenReview: boolean;
  readonly audience: string;
  readonly publicAssignments: boolean;
  /** Listening beyond loopback with no auth, at the operator's own risk. */
  readonly insecure: boolean;
  readonly webhookClientCa: string | undefined;
}

/** Raw flag values as commander hands them over (strings, or undefined when unset). */
export type RawFlags = Readonly<Record<string, unknown>>;

function bad(flag: string, why: string, example: string): PkmError {
  return new PkmError('INVALID_CONFIG', `--${flag} ${why}, e.g. --${flag} ${example}`);
}

function text(raw: RawFlags, name: string): string | undefined {
  const v = raw[name];
  return v === undefined || v === '' ? undefined : String(v);
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "20m", "90s", "1h30m", "0": a duration in milliseconds. */
export function parseDuration(value: string, flag: string): number {
  const parts = [...value.matchAll(/(\d+)(ms|s|m|h|d)/g)];
  const whole = parts.map((p) => p[0]).join('');
  if (value === '0') return 0;
  if (parts.length === 0 || whole !== value)
    throw bad(flag, `takes a duration like 20m, 90s or 1h30m, not "${value}"`, '20m');
  const ms = parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] ?? ''] ?? Number.NaN), 0);
  if (!Number.isSafeInteger(ms)) throw bad(flag, `is too long: "${value}"`, '20m');
  return ms;
}

export function parseInteger(
  value: string,
  flag: string,
  min: number,
  max: number,
  example: string,
): number {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw bad(flag, `takes a whole number from ${min} to ${max}, not "${value}"`, example);
  }
  return n;
}

/** "127.0.0.1:8000", "[::1]:8000", "0.0.0.0:0" */
export function parseListen(value: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (host === undefined || !Number.isInteger(port) || port > 65535) {
    throw bad('listen', `takes host:port, not "${value}"`, '127.0.0.1:8000');
  }
  return { host, port };
}

function optionalInteger(
  raw: RawFlags,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const value = text(raw, name);
  const flagName = name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
  return value === undefined ? undefined : parseInteger(value, flagName, min, max, String(min));
}

function optionalDuration(raw: RawFlags, name: string): number | undefined {
  const value = text(raw, name);
  return value === undefined
    ? undefined
    : parseDuration(
        value,
        name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`),
      );
}

/** --namespace a --namespace b, or PKM_NAMESPACE=a,b. */
function parseNamespaces(value: unknown): string[] {
  const list = Array.isArray(value) ? value.map(String) : typeof value === 'string' ? [value] : [];
  return [
    ...new Set(
      list
        .flatMap((v) => v.split(','))
        .map((v) => v.trim())
        .filter((v) => v !== ''),
    ),
  ].map((ns) => {
    try {
      return parseNamespace(ns);
    } catch {
      throw bad('namespace', `takes Kubernetes namespace names, not "${ns}"`, 'validators');
    }
  });
}

function parseTls(cert: string | undefined, key: string | undefined) {
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined)
    throw bad(
      cert ? 'tls-key' : 'tls-cert',
      'goes with --tls-cert and --tls-key together',
      '/tls/tls.key',
    );
  return { certFile: cert, keyFile: key };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(host);
}

function on(raw: RawFlags, name: string): boolean {
  return raw[name] === true || raw[name] === 'true';
}

function parseAuth(raw: RawFlags, listen: ListenAddress, tls: boolean): AuthConfig {
  const auth: AuthConfig = {
    tokenFile: text(raw, 'authTokenFile'),
    tokenReview: on(raw, 'tokenReview'),
    audience: text(raw, 'tokenAudience') ?? 'pkm',
    publicAssignments: on(raw, 'publicAssignments'),
    insecure: on(raw, 'insecure'),
    webhookClientCa: text(raw, 'webhookClientCa'),
  };
  if (auth.webhookClientCa !== undefined && !tls)
    throw bad('webhook-client-ca', 'needs --tls-cert and --tls-key', '/tls/ca.crt');
  const secured = auth.tokenFile !== undefined || auth.tokenReview;
  if (!secured && !auth.insecure && !isLoopback(listen.host)) {
    throw new PkmError(
      'INVALID_CONFIG',
      `refusing to listen on ${listen.host}:${listen.port} without authentication: anyone who reaches it could take validator keys. Set --auth-token-file (operators) and --token-review (pods), listen on 127.0.0.1, or pass --insecure to accept the risk`,
    );
  }
  return auth;
}

/** The chain, and its genesis root from --network or --genesis-validators-root. */
function parseChain(raw: RawFlags): Pick<ServerConfig, 'network' | 'genesisValidatorsRoot'> {
  const flags = {
    network: text(raw, 'network'),
    forkVersion: text(raw, 'forkVersion'),
    chainId: text(raw, 'chainId'),
    depositContract: text(raw, 'depositContract'),
    genesisValidatorsRoot: text(raw, 'genesisValidatorsRoot'),
  };
  const network = parseNetwork(flags);
  return {
    network,
    genesisValidatorsRoot:
      network?.genesisValidatorsRoot ?? flags.genesisValidatorsRoot?.toLowerCase(),
  };
}

export function parseServerConfig(raw: RawFlags): ServerConfig {
  const maxTotal = text(raw, 'maxTotalKeys');
  const chain = parseChain(raw);
  const listen = parseListen(text(raw, 'listen') ?? '127.0.0.1:8000');
  const tls = parseTls(text(raw, 'tlsCert'), text(raw, 'tlsKey'));
  const config: ServerConfig = {
    dataDir: text(raw, 'dataDir') ?? './data',
    mnemonicFile: text(raw, 'mnemonicFile'),
    mnemonicPassphraseFile: text(raw, 'mnemonicPassphraseFile'),
    listen,
    reuseDelayMs: parseDuration(text(raw, 'reuseDelay') ?? '20m', 'reuse-delay'),
    maxKeysPerPod: parseInteger(
      text(raw, 'maxKeysPerPod') ?? '64',
      'max-keys-per-pod',
      1,
      10_000,
      '64',
    ),
    maxTotalKeys:
      maxTotal === undefined
        ? undefined
        : parseInteger(maxTotal, 'max-total-keys', 1, 100_000_000, '10000'),
    logLevel: parseLogLevel(text(raw, 'logLevel')),
    namespaces: parseNamespaces(raw.namespace),
    tls,
    auth: parseAuth(raw, listen, tls !== undefined),
    kubeconfig: text(raw, 'kubeconfig'),
    rateLimitPerMinute: parseInteger(
      text(raw, 'rateLimit') ?? '60',
      'rate-limit',
      0,
      1_000_000,
      '60',
    ),
    beaconUrl: text(raw, 'beaconUrl'),
    kekFile: text(raw, 'kekFile'),
    resyncWindowMs: parseDuration(text(raw, 'resyncWindow') ?? '60s', 'resync-window'),
    derivationLookahead: parseInteger(
      text(raw, 'derivationLookahead') ?? '10000',
      'derivation-lookahead',
      0,
      1_000_000,
      '10000',
    ),
    kube:
      raw.kube === true || raw.kube === 'true'
        ? {
            kubeconfig: text(raw, 'kubeconfig'),
            labelSelector: text(raw, 'labelSelector'),
            graceMs: parseDuration(text(raw, 'kubeGrace') ?? '60s', 'kube-grace'),
          }
        : undefined,
    ...chain,
    deposits: parseDepositSettings(
      {
        network: text(raw, 'network'),
        forkVersion: text(raw, 'forkVersion'),
        chainId: text(raw, 'chainId'),
        depositContract: text(raw, 'depositContract'),
        withdrawalAddress: text(raw, 'withdrawalAddress'),
        compounding: raw.compounding === true || raw.compounding === 'true',
        depositAmountGwei: text(raw, 'depositAmountGwei'),
        depositMode: text(raw, 'depositMode'),
        ethRpc: text(raw, 'ethRpc'),
        funderKeyFile: text(raw, 'funderKeyFile'),
        confirmations: optionalInteger(raw, 'confirmations', 0, 64),
        receiptTimeoutMs: optionalDuration(raw, 'receiptTimeout'),
        maxDepositsPerHour: optionalInteger(raw, 'maxDepositsPerHour', 1, 1_000_000),
        reconcileMs: optionalDuration(raw, 'depositReconcileInterval'),
      },
      text(raw, 'mnemonicFile') !== undefined,
      chain.network,
    ),
  };
  return Object.freeze(config);
}

/** A server URL for the CLI commands that talk to a running server. */
export function parseServerUrl(value: unknown): URL {
  if (typeof value !== 'string' || value === '')
    throw bad('server', 'is required', 'http://127.0.0.1:8000');
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad('server', `is not a URL: "${value}"`, 'http://127.0.0.1:8000');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw bad('server', `must be http or https, not "${url.protocol}"`, 'https://pkm.pkm.svc:8000');
  }
  return url;
}

function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  const found = allowed.find((a) => a === value);
  if (found === undefined)
    throw bad(flag, `is one of ${allowed.join(', ')}, not "${value}"`, allowed[0] ?? '');
  return found;
}

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
