// The composition root: one place that builds the service from its parts, for the server and
// for tests (a temp store, an injected clock, port 0).
import { randomBytes } from 'node:crypto';
import { Allocator, type BeaconChain } from '../allocation/allocator.js';
import { stateCounts } from '../allocation/counts.js';
import type { GroupCommitter } from '../allocation/group-commit.js';
import type { BeaconGate } from '../beacon/liveness.js';
import { type Clock, type Monotonic, systemClock, systemMonotonic } from '../clock.js';
import { type DepositConfig, type DepositRecord, makeDeposit } from '../deposit/deposit-data.js';
import type { Depositor } from '../deposit/depositor.js';
import { ProofVerifier } from '../keys/proof-verifier.js';
import { type KeySource, type NewKey, randomKeySource } from '../keys/source.js';
import type { Logger } from '../log.js';
import type { Store } from '../store/store.js';
import { createApp } from './app.js';
import type { Auth } from './auth.js';
import type { ServerConfig } from './config.js';
import { createMetrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';

function depositMaker(config: DepositConfig) {
  return (key: NewKey): DepositRecord => makeDeposit(key, config);
}

export interface ServiceDeps {
  readonly store: Store;
  readonly config: Pick<ServerConfig, 'reuseDelayMs' | 'maxKeysPerPod' | 'maxTotalKeys'> &
    Partial<Pick<ServerConfig, 'namespaces' | 'resyncWindowMs' | 'derivationLookahead'>>;
  readonly log: Logger;
  readonly clock?: Clock;
  readonly monotonic?: Monotonic;
  /** The store was restored from a backup and its hold has not passed (backup.ts). */
  readonly restored?: boolean;
  readonly keySource?: KeySource;
  readonly deposits?: DepositConfig;
  /** The beacon chain's genesis, for slashing-protection fences (default: --network's). */
  readonly beacon?: BeaconChain;
  /** The liveness gate (--beacon-url). */
  readonly liveness?: BeaconGate;
  /** Send mode: shares `group` with the allocator. */
  readonly depositor?: Depositor;
  /** The one writer of the store, shared by everything that changes it. */
  readonly group: GroupCommitter;
  readonly isDraining?: () => boolean;
  readonly auth?: Auth;
  /** Allocation requests per minute per caller (--rate-limit). */
  readonly rateLimitPerMinute?: number;
  readonly webhookClientCert?: boolean;
}

/** Wires store, allocator, metrics and app together; tests call this over a temp store. */
export function composeApp(deps: ServiceDeps) {
  const clock = deps.clock ?? systemClock;
  const { reuseDelayMs } = deps.config;
  const { depositor } = deps;
  const metrics = createMetrics({
    counts: async () =>
      deps.store.isOpen ? stateCounts(deps.store, clock(), reuseDelayMs) : undefined,
    pods: () => deps.store.storedCounts().pods,
    funderBalanceWei: () => depositor?.balance,
  });
  depositor?.onOutcome((outcome) => metrics.onDeposit(outcome));
  const { group } = deps;
  const allocator = new Allocator({
    store: deps.store,
    group,
    monotonic: deps.monotonic ?? systemMonotonic,
    ...(deps.restored ? { restored: true } : {}),
    ...(deps.config.derivationLookahead === undefined
      ? {}
      : { lookahead: deps.config.derivationLookahead }),
    ...beaconOf(deps),
    ...(depositor ? { depositor } : {}),
    clock,
    keySource: deps.keySource ?? randomKeySource,
    ...(deps.deposits ? { makeDeposit: depositMaker(deps.deposits) } : {}),
    config: deps.config,
    onAllocated: (o) => metrics.onAllocated(o),
    onReleased: (pod, n) => metrics.onReleased(pod, n),
    resyncWindowMs: deps.config.resyncWindowMs ?? 0,
    onConflict: (pod, keys) => {
      metrics.onConflict(keys.length);
      deps.log.error(
        { pod, pubkeys: keys },
        'CONFLICT: these keys run in two pods; they are never handed out until an operator retires them',
      );
    },
    ...(deps.liveness ? { liveness: deps.liveness } : {}),
    onHeldBack: (keys) => {
      metrics.onHeldBack(keys.length);
      deps.log.error({ pubkeys: keys }, 'cooled keys are live on chain: kept from other pods');
    },
    onGateFailure: (err) => {
      metrics.onGateFailure();
      deps.log.error(
        { err },
        'the liveness gate could not answer: cooled keys stay where they are',
      );
    },
    onFenced: (pod, keys) => {
      metrics.onFenced(keys.length);
      deps.log.warn(
        { pod, pubkeys: keys },
        'fenced: the pod went without a confirmed stop; nobody gets these keys before the reuse delay (and the liveness gate)',
      );
    },
    onRefused: (pod, keys) => {
      metrics.onHeartbeatRefused(keys.length);
      deps.log.warn(
        { pod, pubkeys: keys },
        'heartbeat claims refused: the pod reported keys the store does not record as its own, without a valid proof of possession; nothing changed',
      );
    },
    onReported: (pod, keys) => {
      metrics.onReported(keys.length);
      deps.log.error(
        { pod, pubkeys: keys },
        'REPORTED: a pod runs keys this store had no record of; they are never handed out until an operator acts',
      );
    },
  });
  const heartbeats = new Map<string, number>();
  const proofs = new ProofVerifier();
  const app = createApp({
    proofs,
    bootToken: randomBytes(16).toString('hex'),
    heartbeats,
    store: deps.store,
    allocator,
    clock,
    log: deps.log,
    metrics,
    reuseDelayMs,
    namespaces: deps.config.namespaces ?? [],
    maxTotalKeys: deps.config.maxTotalKeys,
    serial: (op) => group.run(op),
    ...(deps.auth ? { auth: deps.auth } : {}),
    ...(deps.webhookClientCert ? { webhookClientCert: true } : {}),
    ...(deps.rateLimitPerMinute
      ? { rateLimiter: new RateLimiter({ perMinute: deps.rateLimitPerMinute }, clock) }
      : {}),
    ...(deps.isDraining ? { isDraining: deps.isDraining } : {}),
    ...(depositor && deps.deposits
      ? { funds: fundsCheck(depositor, deps.deposits.amountGwei) }
      : {}),
  });
  return { app, allocator, metrics, heartbeats, proofs };
}

/** /readyz fails while the funder cannot pay for one more deposit. */
function fundsCheck(depositor: Depositor, amountGwei: number): () => string | undefined {
  return () => {
    const balance = depositor.balance;
    if (balance === undefined || balance >= BigInt(amountGwei) * 10n ** 9n) return undefined;
    return `the funder holds ${balance} wei, less than one deposit`;
  };
}

function beaconOf(deps: ServiceDeps): { beacon?: BeaconChain } {
  const beacon = deps.beacon ?? deps.deposits?.network;
  return beacon ? { beacon } : {};
}
