// What the HTTP app is made of: every dependency createApp (app.ts) and its routes take, passed
// in, so a test can build the app over a temp store with an injected clock. Routes import this
// type from here, not from app.ts, which imports them.
import type { Allocator } from '../allocation/allocator.js';
import type { GroupCommitter } from '../allocation/group-commit.js';
import type { KeyMoves } from '../allocation/moves.js';
import type { NewKeysPolicy } from '../allocation/new-keys.js';
import type { BeaconGate } from '../beacon/liveness.js';
import type { Clock } from '../clock.js';
import type { ExitChain } from '../deposit/exit-chain.js';
import type { ProofVerifier } from '../keys/proof-verifier.js';
import type { Logger } from '../log.js';
import type { StoreContract } from '../store/contract.js';
import type { Auth } from './auth.js';
import type { Metrics } from './metrics.js';
import type { RateLimiter } from './rate-limit.js';

export interface AppDeps {
  readonly store: StoreContract;
  readonly allocator: Allocator;
  /** Live key moves (issue 16): counts, moves, rebalances, the agents' reports. */
  readonly moves: KeyMoves;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly reuseDelayMs: number;
  /** True once shutdown has begun: /readyz turns 503 so traffic moves away. */
  readonly isDraining?: () => boolean;
  /** Fresh at each start: a changed token tells agents to re-assert what they run. */
  readonly bootToken?: string;
  /** When each pod last sent a heartbeat (ms), since this start. */
  readonly heartbeats?: Map<string, number>;
  /** Namespaces this server serves (--namespace); empty or absent: all. */
  readonly namespaces?: readonly string[];
  /** Why the store cannot serve now (a database that stopped answering), if it cannot. */
  readonly storeHealth?: () => string | undefined;
  /** Send mode: why the funder cannot pay for a deposit, if it cannot. */
  readonly funds?: () => string | undefined;
  /** --max-total-keys: whether the pool may still grow (for /v1/status). */
  readonly maxTotalKeys?: number | undefined;
  /** --new-keys: `never` means the pool grows only by imports (for /v1/status). */
  readonly newKeys?: NewKeysPolicy;
  /** Who may call what (auth.ts); absent: no tokens asked for. */
  readonly auth?: Auth;
  /** Per-caller limits on the allocation routes. */
  readonly rateLimiter?: RateLimiter;
  /** The one writer of the store (the allocator's too): KEK rotation runs through it. */
  readonly group: GroupCommitter;
  /** Checks heartbeats' proofs of possession; absent: one made here (its worker is unref'd). */
  readonly proofs?: ProofVerifier;
  /** --webhook-client-ca: the webhook answers only callers with a verified client certificate. */
  readonly webhookClientCert?: boolean;
  /** What voluntary exits are signed over (--network); absent: the exit route refuses. */
  readonly exitChain?: ExitChain;
  /** --beacon-url: the exit route looks validator indices up there. */
  readonly liveness?: BeaconGate;
}
