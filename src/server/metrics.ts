// Prometheus metrics (prom-client), in a registry per app so that tests can run many apps.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AllocationOutcome } from '../allocation/allocator.js';
import type { StateCounts } from '../allocation/counts.js';
import type { DepositOutcome } from '../allocation/depositor.js';
import { StoredState } from '../api/key-state.js';

/** `refused`: the caller may not report deletions (403, nothing read or changed). */
export type WebhookOutcome = 'released' | 'ignored' | 'dry-run' | 'error' | 'refused';

export type ProofOutcome = 'valid' | 'invalid' | 'unneeded' | 'over-budget';

export interface Metrics {
  readonly registry: Registry;
  readonly requests: Histogram<'method' | 'route' | 'status'>;
  onAllocated(outcome: AllocationOutcome): void;
  onReleased(pod: string, released: number): void;
  onDeposit(outcome: DepositOutcome): void;
  onWebhook(outcome: WebhookOutcome): void;
  onWatcherResync(): void;
  onHeldBack(keys: number): void;
  onConflict(keys: number): void;
  onFenced(keys: number): void;
  onReported(keys: number): void;
  onHeartbeatRefused(keys: number): void;
  /** Heartbeat proofs of possession, by outcome. */
  onProofs(outcome: ProofOutcome, n: number): void;
  onGateFailure(): void;
}

export interface MetricsSource {
  /** Undefined while the store is closed: the scrape goes on without the key gauges. */
  counts(): Promise<StateCounts | undefined>;
  pods(): number;
  /** Send mode: the funder's balance as last read. */
  funderBalanceWei?(): bigint | undefined;
}

export function createMetrics(source: MetricsSource): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'pkm_process_' });
  const requests = new Histogram({
    name: 'pkm_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const allocations = new Counter({
    name: 'pkm_allocations_total',
    help: 'Allocation requests that changed the store',
    registers: [registry],
  });
  const keysHanded = new Counter({
    name: 'pkm_keys_handed_out_total',
    help: 'Keys given to pods, by where they came from',
    labelNames: ['source'] as const,
    registers: [registry],
  });
  const releases = new Counter({
    name: 'pkm_releases_total',
    help: 'Pods whose keys were released',
    registers: [registry],
  });
  const releasedKeys = new Counter({
    name: 'pkm_released_keys_total',
    help: 'Keys released to cooling',
    registers: [registry],
  });
  new Gauge({
    name: 'pkm_keys',
    help: 'Keys by state (a cooling key whose reuse delay has passed counts as free)',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      const c = await source.counts();
      if (!c) return;
      for (const state of StoredState.options) this.set({ state }, c[state]);
      // Fenced keys are cooling keys whose holder's stop is not known (counted in cooling too).
      this.set({ state: 'fenced' }, c.fenced);
    },
  });
  new Gauge({
    name: 'pkm_pods',
    help: 'Pods holding at least one key',
    registers: [registry],
    collect() {
      this.set(source.pods());
    },
  });
  const deposits = new Counter({
    name: 'pkm_deposits_total',
    help: 'Deposit steps by outcome (sent, deposited, reverted, failed, timeout, unreachable)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'pkm_funder_balance_eth',
    help: "The deposit funder's balance in ETH, as last read (send mode)",
    registers: [registry],
    collect() {
      const wei = source.funderBalanceWei?.();
      if (wei !== undefined) this.set(Number(wei / 10n ** 9n) / 1e9);
    },
  });
  const conflicts = new Counter({
    name: 'pkm_conflicts_total',
    help: 'Keys a heartbeat found running in two pods (alert on any)',
    registers: [registry],
  });
  const heldBack = new Counter({
    name: 'pkm_liveness_held_back_total',
    help: 'Cooled keys the beacon node saw live, kept from other pods (alert on any)',
    registers: [registry],
  });
  const fenced = new Counter({
    name: 'pkm_fenced_keys_total',
    help: 'Keys fenced: released without a confirmed stop (a forced deletion, a pod gone while running)',
    registers: [registry],
  });
  const reported = new Counter({
    name: 'pkm_reported_keys_total',
    help: 'Keys pods reported running that the store had no record of (alert on any)',
    registers: [registry],
  });
  const refused = new Counter({
    name: 'pkm_heartbeat_refused_total',
    help: 'Heartbeat claims refused for want of a valid proof of possession (a pod reporting keys that are not its own)',
    registers: [registry],
  });
  const proofs = new Counter({
    name: 'pkm_heartbeat_proofs_total',
    help: 'Heartbeat proofs of possession: valid, invalid, not needed (the key was the pod’s), or over the pod’s budget (not checked)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const gateFailures = new Counter({
    name: 'pkm_liveness_gate_failures_total',
    help: 'Liveness checks the beacon node could not answer: the keys stayed where they were',
    registers: [registry],
  });
  const resyncs = new Counter({
    name: 'pkm_watcher_resyncs_total',
    help: 'Pod watcher re-lists after a watch error',
    registers: [registry],
  });
  const webhook = new Counter({
    name: 'pkm_webhook_reviews_total',
    help: 'Pod-deletion reviews by outcome (released, ignored, dry-run, error, refused)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  return {
    registry,
    requests,
    onConflict(keys) {
      conflicts.inc(keys);
    },
    onHeldBack(keys) {
      heldBack.inc(keys);
    },
    onFenced(keys) {
      fenced.inc(keys);
    },
    onReported(keys) {
      reported.inc(keys);
    },
    onHeartbeatRefused(keys) {
      refused.inc(keys);
    },
    onProofs(outcome, n) {
      if (n > 0) proofs.inc({ outcome }, n);
    },
    onGateFailure() {
      gateFailures.inc();
    },
    onWatcherResync() {
      resyncs.inc();
    },
    onWebhook(outcome) {
      webhook.inc({ outcome });
    },
    onDeposit(outcome) {
      deposits.inc({ outcome });
    },
    onAllocated(o) {
      allocations.inc();
      keysHanded.inc({ source: 'reclaimed' }, o.reclaimed);
      keysHanded.inc({ source: 'reused' }, o.reused);
      keysHanded.inc({ source: 'created' }, o.created);
    },
    onReleased(_pod, n) {
      releases.inc();
      releasedKeys.inc(n);
    },
  };
}
