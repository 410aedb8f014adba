// What the allocator tells operators: each event is counted in a metric and logged, at error
// level where a key may be at risk (a conflict, a live cooled key, an unknown key running).
import type { AllocatorDeps } from '../allocation/allocator.js';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';

type Alerts = Pick<
  AllocatorDeps,
  | 'onAllocated'
  | 'onReleased'
  | 'onConflict'
  | 'onHeldBack'
  | 'onGateFailure'
  | 'onFenced'
  | 'onRefused'
  | 'onReported'
>;

export function allocatorAlerts(metrics: Metrics, log: Logger): Alerts {
  return {
    onAllocated: (o) => metrics.onAllocated(o),
    onReleased: (pod, n) => metrics.onReleased(pod, n),
    onConflict: (pod, keys) => {
      metrics.onConflict(keys.length);
      log.error(
        { pod, pubkeys: keys },
        'CONFLICT: these keys run in two pods; they are never handed out until an operator retires them',
      );
    },
    onHeldBack: (keys) => {
      metrics.onHeldBack(keys.length);
      log.error({ pubkeys: keys }, 'cooled keys are live on chain: kept from other pods');
    },
    onGateFailure: (err) => {
      metrics.onGateFailure();
      log.error({ err }, 'the liveness gate could not answer: cooled keys stay where they are');
    },
    onFenced: (pod, keys) => {
      metrics.onFenced(keys.length);
      log.warn(
        { pod, pubkeys: keys },
        'fenced: the pod went without a confirmed stop; nobody gets these keys before the reuse delay (and the liveness gate)',
      );
    },
    onRefused: (pod, keys) => {
      metrics.onHeartbeatRefused(keys.length);
      log.warn(
        { pod, pubkeys: keys },
        'heartbeat claims refused: the pod reported keys the store does not record as its own, without a valid proof of possession; nothing changed',
      );
    },
    onReported: (pod, keys) => {
      metrics.onReported(keys.length);
      log.error(
        { pod, pubkeys: keys },
        'REPORTED: a pod runs keys this store had no record of; they are never handed out until an operator acts',
      );
    },
  };
}
