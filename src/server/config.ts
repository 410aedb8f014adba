// `pkm server`'s config: every flag checked, alone and against the others, before anything
// starts (bad input changes nothing). Each error names the flag to set and gives an example.

import { NEW_KEYS_POLICIES, type NewKeysPolicy } from '../allocation/new-keys.js';
import { parseNamespace } from '../api/names.js';
import {
  bad,
  type ListenAddress,
  on,
  optionalDuration,
  optionalInteger,
  parseDuration,
  parseInteger,
  parseListen,
  type RawFlags,
  text,
} from '../config.js';
import { type DepositSettings, parseDepositSettings, parseNetwork } from '../deposit/config.js';
import type { Network } from '../deposit/networks.js';
import { PkmError } from '../errors.js';
import { type LogLevel, parseLogLevel } from '../log.js';
import { parseStoreConfig, type StoreConfig } from './store-config.js';

export interface ServerConfig {
  readonly dataDir: string;
  /** Where the state lives: LevelDB in --data-dir (the default), or PostgreSQL (--store). */
  readonly store: StoreConfig;
  /**
   * Derive keys from the BIP-39 mnemonic in this file, with its optional passphrase (both read
   * at start, never stored); undefined: random keys. A passphrase alone is refused.
   */
  readonly mnemonic:
    | {
        readonly file: string;
        readonly passphraseFile: string | undefined;
        /**
         * --mnemonic-start-index: the store's next derivation index is at least this (the
         * operator used the indexes below it elsewhere); undefined: not given.
         */
        readonly startIndex: number | undefined;
      }
    | undefined;
  /**
   * --new-keys: `always` makes a new key when the pool cannot fill an allocation; `never`
   * answers POOL_EXHAUSTED instead (keys then come only from imports).
   */
  readonly newKeys: NewKeysPolicy;
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
  /**
   * The key-encryption key (32 bytes, hex or base64); default: `<data-dir>/kek`, made once.
   * Required with PostgreSQL (store-config.ts).
   */
  readonly kekFile: string | undefined;
  /** After a start, how long keys held before stay with their pods (heartbeats re-assert). */
  readonly resyncWindowMs: number;
  /** Indexes past the next one searched for a key a pod reports and the store lost. */
  readonly derivationLookahead: number;
  /**
   * A beacon node to ask before a cooled key moves to another pod (liveness gate), with the
   * network it must follow: --beacon-url without --network is refused.
   */
  readonly liveness: { readonly beaconUrl: string; readonly network: Network } | undefined;
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

/** EIP-2333 child indexes are 32-bit. */
const MAX_DERIVATION_INDEX = 2 ** 32 - 1;

/**
 * --mnemonic-file, and its passphrase and start index, which mean nothing without it: a start
 * index on random keys would be silently ignored, so it is refused.
 */
function parseMnemonic(raw: RawFlags): ServerConfig['mnemonic'] {
  const file = text(raw, 'mnemonicFile');
  const passphraseFile = text(raw, 'mnemonicPassphraseFile');
  const start = text(raw, 'mnemonicStartIndex');
  if (file === undefined) {
    const alone =
      passphraseFile !== undefined
        ? 'mnemonic-passphrase-file'
        : start !== undefined
          ? 'mnemonic-start-index'
          : undefined;
    if (alone !== undefined)
      throw new PkmError(
        'INVALID_CONFIG',
        `--${alone} needs --mnemonic-file, e.g. --mnemonic-file /etc/pkm/mnemonic`,
      );
    return undefined;
  }
  const startIndex =
    start === undefined
      ? undefined
      : parseInteger(start, 'mnemonic-start-index', 0, MAX_DERIVATION_INDEX, '1000');
  return { file, passphraseFile, startIndex };
}

/** --new-keys always|never. */
function parseNewKeys(value: string | undefined): NewKeysPolicy {
  if (value === undefined) return 'always';
  const policy = NEW_KEYS_POLICIES.find((p) => p === value);
  if (policy === undefined) throw bad('new-keys', `is always or never, not "${value}"`, 'never');
  return policy;
}

/** --beacon-url, and the --network its node is checked to follow (the gate fails closed). */
function parseLiveness(raw: RawFlags, network: Network | undefined): ServerConfig['liveness'] {
  const beaconUrl = text(raw, 'beaconUrl');
  if (beaconUrl === undefined) return undefined;
  if (network === undefined)
    throw new PkmError(
      'INVALID_CONFIG',
      '--beacon-url needs --network (the node is checked to follow it), e.g. --network hoodi',
    );
  return { beaconUrl, network };
}

/** The chain, and its genesis root from --network or --genesis-validators-root. */
export function parseChain(raw: RawFlags): Pick<ServerConfig, 'network' | 'genesisValidatorsRoot'> {
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
    store: parseStoreConfig(raw),
    mnemonic: parseMnemonic(raw),
    newKeys: parseNewKeys(text(raw, 'newKeys')),
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
    liveness: parseLiveness(raw, chain.network),
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
