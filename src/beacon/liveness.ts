// The liveness gate (--beacon-url): before a cooled key moves to another pod, ask the beacon
// node what it knows of that validator: is it on chain, slashed or exited, and was it live in
// the current or the previous epoch. A live key is held back: its old holder may still be
// running it, and a second copy would be slashed.
//
// It fails closed (DESIGN.md "Safety rules"): whatever keeps the node from giving a sure answer
// (no answer, an error status, a missing route, a node that is syncing, optimistic, without its
// execution client or behind the wall clock, a node of another network, an answer in the wrong
// shape or one that leaves out an index asked) throws BEACON_UNAVAILABLE (503, Retry-After).
// It never turns into "not live".
//
// Standard beacon API (ethereum/beacon-APIs) only:
//   GET  /eth/v1/beacon/genesis                  getGenesis: which network the node follows
//   GET  /eth/v1/config/spec                     getSpec: slot length and slots per epoch
//   GET  /eth/v1/node/syncing                    getSyncingStatus
//   POST /eth/v1/beacon/states/head/validators   postStateValidators (GET getStateValidators
//                                                for nodes without it)
//   POST /eth/v1/validator/liveness/{epoch}      getLiveness
import { z } from 'zod';
import { PUBKEY_ANY_CASE as PUBKEY } from '../api/pubkey.js';
import { type Monotonic, systemMonotonic } from '../clock.js';
import type { Network } from '../deposit/networks.js';
import { PkmError } from '../errors.js';
import { BEACON_RETRY_AFTER_S, type BeaconAnswer, BeaconApi, beaconUnavailable } from './api.js';

/** Validator statuses of the beacon API (types/api.yaml ValidatorStatus). */
export const VALIDATOR_STATUSES = [
  'pending_initialized',
  'pending_queued',
  'active_ongoing',
  'active_exiting',
  'active_slashed',
  'exited_unslashed',
  'exited_slashed',
  'withdrawal_possible',
  'withdrawal_done',
] as const;
export type ValidatorStatus = (typeof VALIDATOR_STATUSES)[number];

/** Statuses of a validator whose duties are over for good: slashed, exited or withdrawn. */
const ENDED: ReadonlySet<ValidatorStatus> = new Set<ValidatorStatus>([
  'active_slashed',
  'exited_unslashed',
  'exited_slashed',
  'withdrawal_possible',
  'withdrawal_done',
]);

/** What the beacon node's head state holds for a pubkey that is a validator. */
export interface ChainValidator {
  /** Validator index (decimal). */
  readonly index: string;
  readonly status: ValidatorStatus;
  /** `validator.slashed`. */
  readonly slashed: boolean;
  /** Seen live (getLiveness) in the current or the previous epoch. */
  readonly live: boolean;
}

/**
 * One pubkey as the beacon node sees it:
 * - `absent`: not a validator in the head state. Never deposited, or deposited and not yet
 *   processed: a deposit waits in the chain's pending deposits before its validator exists.
 * - `ended`: slashed (`validator.slashed`, `active_slashed`, `exited_slashed`), exited
 *   (`exited_*`) or withdrawn (`withdrawal_*`). Never to be handed out again; `live` is still
 *   told, as the node saw it.
 * - `live`: any other validator (pending, active, exiting) seen live in this or the last epoch.
 * - `not-live`: any other validator not seen live in either epoch.
 */
export type ValidatorView =
  | { readonly kind: 'absent' }
  | ({ readonly kind: 'live' | 'not-live' | 'ended' } & ChainValidator);
export type ValidatorKind = ValidatorView['kind'];

export interface LivenessGate {
  /** The pubkeys among `pubkeys` whose validators were live in this or the last epoch. */
  live(pubkeys: readonly string[], nowMs: number): Promise<string[]>;
}

/** The liveness gate with the full answer the allocator needs. */
export interface BeaconGate extends LivenessGate {
  /**
   * The view of every pubkey asked (0x + 96 hex digits; each one a key of the map, as given).
   * `nowMs` is the wall clock: it gives the current epoch. Throws BEACON_UNAVAILABLE (503,
   * Retry-After) whenever the node cannot give a sure answer for every pubkey, and
   * INVALID_PUBKEY for a string that is not a pubkey.
   */
  statuses(pubkeys: readonly string[], nowMs: number): Promise<Map<string, ValidatorView>>;
  /**
   * The validator index of each pubkey (lowercase) that is a validator in the head state; a
   * pubkey left out is none. Fails closed like `statuses`, without asking about liveness.
   */
  indices(pubkeys: readonly string[], nowMs: number): Promise<Map<string, string>>;
}

/** What the server knows of its network (--network): see src/deposit/networks.ts. */
export type GateNetwork = Pick<
  Network,
  'name' | 'forkVersion' | 'genesisTime' | 'genesisValidatorsRoot'
>;

export interface GateOptions {
  /** Per request (default 5 s). */
  readonly timeoutMs?: number;
  /** How long a good check of the node (network, sync) is trusted (default 30 s). */
  readonly checkTtlMs?: number;
  /** The clock the check's age is counted on (default: performance.now). */
  readonly monotonic?: Monotonic;
}

/** How the gate's start went (see start()). */
export type GateStart =
  | { readonly ready: true }
  | { readonly ready: false; readonly reason: string };

/** The node's chain clock, known once its network was checked. */
interface ChainClock {
  readonly genesisTime: number;
  readonly slotMs: number;
  readonly slotsPerEpoch: number;
}

/** A node that follows another network than --network's. */
class WrongNetwork extends PkmError {}

// getStateValidators takes at most 64 ids in the query (maxItems: 64; 414 beyond); the POST
// variants name no limit, so batches stay moderate for every client.
const GET_IDS_PER_REQUEST = 64;
const POST_IDS_PER_REQUEST = 256;
/** A head this many epochs behind the wall clock is not synced, whatever is_syncing says. */
const MAX_HEAD_LAG_EPOCHS = 2;
/** A head this many slots ahead of the wall clock means our clock or genesis is wrong. */
const MAX_HEAD_LEAD_SLOTS = 2;

const Uint64 = z.string().regex(/^\d{1,20}$/);
const Hex = (bytes: number) => z.string().regex(new RegExp(`^0x[0-9a-fA-F]{${bytes * 2}}$`));

const GenesisAnswer = z.object({
  data: z.object({
    genesis_time: Uint64,
    genesis_validators_root: Hex(32),
    genesis_fork_version: Hex(4),
  }),
});
const SpecAnswer = z.object({
  data: z.object({
    SLOTS_PER_EPOCH: Uint64,
    SECONDS_PER_SLOT: Uint64.optional(),
    SLOT_DURATION_MS: Uint64.optional(),
  }),
});
const SyncingAnswer = z.object({
  data: z.object({
    head_slot: Uint64,
    sync_distance: Uint64,
    is_syncing: z.boolean(),
    is_optimistic: z.boolean(),
    el_offline: z.boolean(),
  }),
});
const ValidatorsAnswer = z.object({
  execution_optimistic: z.boolean(),
  data: z.array(
    z.object({
      index: Uint64,
      status: z.enum(VALIDATOR_STATUSES),
      validator: z.object({ pubkey: Hex(48), slashed: z.boolean() }),
    }),
  ),
});
const LivenessAnswer = z.object({
  data: z.array(z.object({ index: Uint64, is_live: z.boolean() })),
});

export class BeaconLivenessGate implements BeaconGate {
  private readonly api: BeaconApi;
  private readonly ttlMs: number;
  private readonly monotonic: Monotonic;
  /** The last good check, trusted until `until` on the monotonic clock. */
  private checked: { readonly clock: ChainClock; readonly until: number } | undefined;
  private checking: Promise<ChainClock> | undefined;
  /** False once the node answered the POST variant of getStateValidators with "no route". */
  private postValidators = true;

  constructor(
    beaconUrl: string,
    private readonly network: GateNetwork,
    opts: GateOptions = {},
  ) {
    this.api = new BeaconApi(beaconUrl, opts.timeoutMs ?? 5_000);
    this.ttlMs = opts.checkTtlMs ?? 30_000;
    this.monotonic = opts.monotonic ?? systemMonotonic;
  }

  /** --beacon-url as logs may show it (no credentials). */
  get url(): string {
    return this.api.shown;
  }

  /**
   * Checks the node once at server start. A node of another network throws INVALID_CONFIG: that
   * is a wrong flag, and serving on would only ever fail. Anything that may heal by itself (no
   * answer, syncing, genesis not known yet, no liveness route yet) is returned: the gate stays
   * closed and checks again at each use.
   */
  async start(nowMs: number): Promise<GateStart> {
    try {
      const clock = await this.ready(nowMs);
      // A node without getLiveness would fail every use: say so now rather than at the first
      // move. Index 0 exists on every chain that has a genesis.
      await this.liveIndices(['0'], epochsAt(clock, nowMs));
      return { ready: true };
    } catch (err) {
      if (err instanceof WrongNetwork) throw new PkmError('INVALID_CONFIG', err.message);
      if (err instanceof PkmError && err.code === 'BEACON_UNAVAILABLE')
        return { ready: false, reason: err.message };
      throw err;
    }
  }

  async live(pubkeys: readonly string[], nowMs: number): Promise<string[]> {
    const views = await this.statuses(pubkeys, nowMs);
    return [...views].filter(([, v]) => v.kind !== 'absent' && v.live).map(([pk]) => pk);
  }

  async statuses(pubkeys: readonly string[], nowMs: number): Promise<Map<string, ValidatorView>> {
    const out = new Map<string, ValidatorView>();
    if (pubkeys.length === 0) return out;
    for (const pk of pubkeys)
      if (!PUBKEY.test(pk))
        throw new PkmError('INVALID_PUBKEY', `not a pubkey (0x and 96 hex digits): ${pk}`);
    // The head state is only worth asking once the node is known to follow our chain's head.
    const clock = await this.ready(nowMs);
    const wanted = [...new Set(pubkeys.map((pk) => pk.toLowerCase()))];
    const onChain = await this.validators(wanted);
    const live = await this.liveIndices(
      [...new Set([...onChain.values()].map((v) => v.index))],
      epochsAt(clock, nowMs),
    );
    for (const pk of pubkeys) {
      const v = onChain.get(pk.toLowerCase());
      if (v === undefined) {
        out.set(pk, { kind: 'absent' });
        continue;
      }
      const isLive = live.has(v.index);
      const kind = v.slashed || ENDED.has(v.status) ? 'ended' : isLive ? 'live' : 'not-live';
      out.set(pk, { kind, index: v.index, status: v.status, slashed: v.slashed, live: isLive });
    }
    return out;
  }

  async indices(pubkeys: readonly string[], nowMs: number): Promise<Map<string, string>> {
    for (const pk of pubkeys)
      if (!PUBKEY.test(pk))
        throw new PkmError('INVALID_PUBKEY', `not a pubkey (0x and 96 hex digits): ${pk}`);
    if (pubkeys.length === 0) return new Map();
    await this.ready(nowMs);
    const onChain = await this.validators([...new Set(pubkeys.map((pk) => pk.toLowerCase()))]);
    return new Map([...onChain].map(([pk, v]) => [pk, v.index]));
  }

  /** The chain clock, from a check at most checkTtlMs old; one check at a time. */
  private async ready(nowMs: number): Promise<ChainClock> {
    const checked = this.checked;
    if (checked && this.monotonic() < checked.until) return checked.clock;
    this.checked = undefined;
    this.checking ??= this.check(nowMs).finally(() => {
      this.checking = undefined;
    });
    const clock = await this.checking;
    this.checked = { clock, until: this.monotonic() + this.ttlMs };
    return clock;
  }

  /**
   * The node follows --network (genesis), and its head is the chain's head: not syncing, not
   * optimistic (an optimistic head is not verified by the execution client and may be dropped),
   * its execution client online, and the head within two epochs of the wall clock (a node cut
   * off from its peers may say it is synced while its view stands still).
   */
  private async check(nowMs: number): Promise<ChainClock> {
    const clock = await this.chainClock();
    const answer = await this.get('/eth/v1/node/syncing', SyncingAnswer, 'the sync status');
    const s = answer.data;
    const state = [
      s.is_syncing ? `syncing (${s.sync_distance} slots behind)` : '',
      s.is_optimistic ? 'optimistic (its head is not verified by the execution client)' : '',
      s.el_offline ? 'without its execution client (el_offline)' : '',
    ].filter((x) => x !== '');
    if (state.length > 0)
      throw beaconUnavailable(`the beacon node at ${this.api.shown} is ${state.join(', ')}`);
    const wallSlot = slotAt(clock, nowMs);
    const head = Number(s.head_slot);
    if (head < wallSlot - MAX_HEAD_LAG_EPOCHS * clock.slotsPerEpoch)
      throw beaconUnavailable(
        `the beacon node at ${this.api.shown} says it is synced, but its head (slot ${head}) is ${wallSlot - head} slots behind the clock (slot ${wallSlot})`,
      );
    if (head > wallSlot + MAX_HEAD_LEAD_SLOTS)
      throw beaconUnavailable(
        `the beacon node at ${this.api.shown} is at slot ${head}, ahead of this server's clock (slot ${wallSlot}): check the clocks`,
      );
    return clock;
  }

  /**
   * The node's genesis is the network's: genesis_validators_root identifies a chain (the root of
   * its genesis validators). A custom network without a known root (--network custom) is checked
   * on its genesis fork version (--fork-version), the one thing pkm knows of it; the slot clock
   * then comes from the node (genesis_time, getSpec's SLOT_DURATION_MS or SECONDS_PER_SLOT,
   * SLOTS_PER_EPOCH).
   */
  private async chainClock(): Promise<ChainClock> {
    const g = (await this.get('/eth/v1/beacon/genesis', GenesisAnswer, 'its genesis')).data;
    const n = this.network;
    const differs: string[] = [];
    if (
      n.genesisValidatorsRoot !== undefined &&
      g.genesis_validators_root.toLowerCase() !== n.genesisValidatorsRoot.toLowerCase()
    )
      differs.push(
        `genesis_validators_root ${g.genesis_validators_root}, not ${n.genesisValidatorsRoot}`,
      );
    if (g.genesis_fork_version.toLowerCase() !== n.forkVersion.toLowerCase())
      differs.push(`genesis_fork_version ${g.genesis_fork_version}, not ${n.forkVersion}`);
    if (n.genesisTime !== undefined && Number(g.genesis_time) !== n.genesisTime)
      differs.push(`genesis_time ${g.genesis_time}, not ${n.genesisTime}`);
    if (differs.length > 0)
      throw new WrongNetwork(
        'BEACON_UNAVAILABLE',
        `--beacon-url ${this.api.shown} follows another network than --network ${n.name}: ${differs.join('; ')}`,
        { retryAfter: BEACON_RETRY_AFTER_S },
      );
    const spec = (await this.get('/eth/v1/config/spec', SpecAnswer, 'its spec')).data;
    const slotMs =
      spec.SLOT_DURATION_MS !== undefined
        ? Number(spec.SLOT_DURATION_MS)
        : spec.SECONDS_PER_SLOT !== undefined
          ? Number(spec.SECONDS_PER_SLOT) * 1000
          : 0;
    const slotsPerEpoch = Number(spec.SLOTS_PER_EPOCH);
    if (slotMs <= 0 || slotsPerEpoch <= 0)
      throw beaconUnavailable(
        `the beacon node at ${this.api.shown} gives no slot length or epoch length in /eth/v1/config/spec`,
      );
    return { genesisTime: Number(g.genesis_time), slotMs, slotsPerEpoch };
  }

  /** The validators among `pubkeys` (lowercase) in the head state, by pubkey. */
  private async validators(
    pubkeys: readonly string[],
  ): Promise<Map<string, Omit<ChainValidator, 'live'>>> {
    const found = new Map<string, Omit<ChainValidator, 'live'>>();
    let i = 0;
    while (i < pubkeys.length) {
      const size = this.postValidators ? POST_IDS_PER_REQUEST : GET_IDS_PER_REQUEST;
      const batch = pubkeys.slice(i, i + size);
      const answer = await this.validatorsBatch(batch);
      if (answer === undefined) continue; // POST has no route here: the same ids again by GET
      i += batch.length;
      // The spec: "If an index or public key does not match any known validator, no
      // information will be returned but this will not cause an error." So a validator left
      // out is not one; and the answer names the pubkey of each one it returns.
      const asked = new Set(batch);
      for (const v of answer.data) {
        const pubkey = v.validator.pubkey.toLowerCase();
        const index = canonical(v.index);
        const before = found.get(pubkey);
        if (!asked.has(pubkey) || (before !== undefined && before.index !== index))
          throw beaconUnavailable(
            `the beacon node at ${this.api.shown} answered validators with ${pubkey} (index ${index}), which is not what was asked`,
          );
        found.set(pubkey, { index, status: v.status, slashed: v.validator.slashed });
      }
    }
    return found;
  }

  /** One batch; undefined when the node has no POST route (then it is asked by GET). */
  private async validatorsBatch(
    batch: readonly string[],
  ): Promise<z.infer<typeof ValidatorsAnswer> | undefined> {
    const path = '/eth/v1/beacon/states/head/validators';
    let answer: BeaconAnswer;
    if (this.postValidators) {
      answer = await this.api.request('POST', path, { ids: batch });
      // postStateValidators came after the GET (beacon-APIs v2.5): a node without it answers
      // 404 or 405. A 404 for "State not found" is asked again by GET, and fails there.
      if ([404, 405, 415, 501].includes(answer.status)) {
        this.postValidators = false;
        return undefined;
      }
    } else {
      const query = batch.map((pk) => `id=${pk}`).join('&');
      answer = await this.api.request('GET', `${path}?${query}`);
    }
    const parsed = this.parse(answer, ValidatorsAnswer, 'validators', `${path}`);
    // The head state on an optimistic node may yet be dropped (is_optimistic, above).
    if (parsed.execution_optimistic)
      throw beaconUnavailable(
        `the beacon node at ${this.api.shown} answered validators from an optimistic head`,
      );
    return parsed;
  }

  /** The indices among `indices` seen live in any of `epochs`. */
  private async liveIndices(
    indices: readonly string[],
    epochs: readonly number[],
  ): Promise<Set<string>> {
    const live = new Set<string>();
    for (const epoch of epochs) {
      for (let i = 0; i < indices.length; i += POST_IDS_PER_REQUEST) {
        const batch = indices.slice(i, i + POST_IDS_PER_REQUEST);
        const path = `/eth/v1/validator/liveness/${epoch}`;
        // getLiveness has no 404 in the spec: a 404 is a node or a proxy without the route,
        // which says nothing about the validators. So are all other non-2xx answers.
        const answer = this.parse(
          await this.api.request('POST', path, batch),
          LivenessAnswer,
          'liveness',
          path,
        );
        const told = new Set<string>();
        for (const d of answer.data) {
          const index = canonical(d.index);
          told.add(index);
          if (d.is_live) live.add(index);
        }
        const asked = new Set(batch);
        const missing = batch.filter((index) => !told.has(index));
        const extra = [...told].filter((index) => !asked.has(index));
        if (missing.length > 0 || extra.length > 0) {
          const wrong = [
            missing.length > 0 ? `without validators ${missing.join(', ')}` : '',
            extra.length > 0 ? `with validators not asked: ${extra.join(', ')}` : '',
          ];
          throw beaconUnavailable(
            `the beacon node at ${this.api.shown} answered liveness for epoch ${epoch} ${wrong.filter((w) => w !== '').join(' and ')}`,
          );
        }
      }
    }
    return live;
  }

  private async get<T>(path: string, schema: z.ZodType<T>, what: string): Promise<T> {
    return this.parse(await this.api.request('GET', path), schema, what, path);
  }

  /** A 2xx answer of the expected shape, or BEACON_UNAVAILABLE saying what it was instead. */
  private parse<T>(answer: BeaconAnswer, schema: z.ZodType<T>, what: string, path: string): T {
    if (answer.status < 200 || answer.status > 299) {
      const hint =
        answer.status === 404
          ? path === '/eth/v1/beacon/genesis'
            ? ' (the chain has no genesis yet, or no such route: is the path of --beacon-url right?)'
            : ' (no such route: is the path of --beacon-url right, and does the node serve the standard API?)'
          : answer.status === 503
            ? ' (the node says it is syncing)'
            : '';
      throw beaconUnavailable(
        `the beacon node at ${this.api.shown} answered ${answer.status} for ${path}${hint}${
          answer.detail === '' ? '' : `: ${answer.detail}`
        }`,
      );
    }
    const parsed = schema.safeParse(answer.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue ? ` (${issue.path.join('.') || 'body'}: ${issue.message})` : '';
      throw beaconUnavailable(
        `the beacon node at ${this.api.shown} answered ${what} in an unknown shape${where}`,
      );
    }
    return parsed.data;
  }
}

/** "007" and "7" are one index. */
function canonical(index: string): string {
  return BigInt(index).toString();
}

function slotAt(clock: ChainClock, nowMs: number): number {
  return Math.max(0, Math.floor((nowMs - clock.genesisTime * 1000) / clock.slotMs));
}

/** The current epoch and the previous one (getLiveness: "SHOULD support" both). */
function epochsAt(clock: ChainClock, nowMs: number): number[] {
  const epoch = Math.floor(slotAt(clock, nowMs) / clock.slotsPerEpoch);
  return epoch === 0 ? [0] : [epoch, epoch - 1];
}
