// The PostgreSQL store (issue 15): the store contract on one database, for several servers at
// once later. Keys, pods, meta and the audit log are tables of their own (schema.ts); records
// are the same codec JSON as in LevelDB; each commit() is one transaction (write.ts).
import { randomBytes, randomInt } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { PkmError } from '../../errors.js';
import { type AuditEvent, decodeEvent } from '../audit.js';
import { MetaKey } from '../buckets.js';
import type {
  Change,
  IndexEntry,
  Leadership,
  PassOver,
  PoolIndex,
  PoolRecords,
  StoreContract,
  StoreReads,
} from '../contract.js';
import type { KeyRing } from '../encryption.js';
import { lockedCodec, openSecrets, requireKeyRing, type SecretsMeta } from '../encryption-setup.js';
import { type Counts, type KeyRecord, keyRecordCodec, type PodRecord } from '../records.js';
import type { SecretCodec } from '../secret-codec.js';
import { type PgConnection, pgConnection } from './connection.js';
import { guarded, storeError } from './errors.js';
import { type LeaderLog, type LeaderTimes, PgLeader } from './leader.js';
import { planChange } from './plan.js';
import { LANES, otherLane, type PoolRead, readOldest, readOldestRecords } from './pool-reads.js';
import { Presence, type PresenceMode } from './presence.js';
import {
  type Run,
  readCounters,
  readIndex,
  readKeyRecords,
  readKeys,
  readPod,
  readPods,
  readPodsNamed,
} from './reads.js';
import { CountRow, EventRow, KeyRow, parseOne, parseRows, TextValue } from './rows.js';
import { migrate } from './schema.js';
import { readSnapshot } from './snapshot.js';
import { StoreConflict, writePlan } from './write.js';

export interface PgStoreOptions {
  /** Gives the KEK, as for the LevelDB store (StoreOptions.kek). */
  readonly kek?: (hasDataKey: boolean) => Promise<Buffer>;
  /** More KEKs to try (resuming a KEK rotation). */
  readonly extraKeks?: readonly Buffer[];
  /** The database password (from --store-password-file), kept out of the URL and argv. */
  readonly password?: string;
  /**
   * TLS to the database: true (verify against the system CAs), or node's TLS options;
   * default: none (the URL's query is not read: see connection.ts).
   */
  readonly ssl?: boolean | ConnectionOptions;
  /** Connections at most (default 10). */
  readonly poolSize?: number;
  /** How long to wait for a connection before STORE_UNAVAILABLE (ms, default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Where the leadership's changes are told. */
  readonly log?: LeaderLog;
  /** The leadership's timing (tests shorten it); default LEADER_TIMES. */
  readonly leaderTimes?: LeaderTimes;
  /** This server's wall clock (tests set one off the database's); default Date.now. */
  readonly clock?: () => number;
  /**
   * Picks from a lane of the pools first (`pkm server`): oldest() then answers the oldest
   * entries of this store's lane (a hex digit, random per open: the pubkey's last one), and
   * only past those the oldest of the other lanes in turn, from one picked at random that
   * becomes its lane (pool-reads.ts). Servers picking at once then seldom pick the same keys,
   * which their commits would refuse. Default: exact oldest-first.
   */
  readonly lanes?: boolean;
  /**
   * Holds the database's presence lock while open (presence.ts): `server` beside other
   * servers, `alone` for a maintenance command; STORE_LOCKED when refused. Default: none.
   */
  readonly presence?: PresenceMode;
}

/** How far a server's wall clock may be off the database's (ping()). */
export const MAX_SKEW_MS = 1_000;

/** The meta key of the database's boot token (one for every server: see bootToken()). */
const BOOT_TOKEN = 'bootToken';

export class PgStore implements StoreContract {
  private closed = false;
  get clock(): () => number {
    return this.sharedClock;
  }
  /** Rejects once the store closes (unlessClosed); never resolves. */
  private readonly closedSignal: Promise<never>;
  private signalClosed: (err: PkmError) => void = () => undefined;
  private readonly leader: PgLeader;
  readonly concurrentWriters = true;

  private constructor(
    private readonly pool: pg.Pool,
    connection: PgConnection,
    opts: PgStoreOptions,
    readonly secrets: SecretCodec,
    /**
     * The counters and next key index as of this store's last commit or check (storedCounts()
     * is synchronous); other servers move them too: a commit based on an old next index is
     * refused and refreshes them, and ping() refreshes them.
     */
    private stored: Counts,
    private nextIndex: number,
    private readonly presence: Presence | undefined,
  ) {
    this.leader = new PgLeader(connection, opts.log, opts.leaderTimes);
    this.closedSignal = new Promise<never>((_, reject) => {
      this.signalClosed = reject;
    });
    // Nobody may be racing it when it rejects: heard here, so that is no unhandled rejection.
    this.closedSignal.catch(() => undefined);
    this.localClock = opts.clock ?? Date.now;
    this.beside = opts.presence === 'server';
    this.ownLane = opts.lanes ? randomInt(LANES).toString(16) : undefined;
  }

  /** This store's lane of the pools, when it picks by lanes. */
  private ownLane: string | undefined;
  get lane(): string | undefined {
    return this.ownLane;
  }

  /**
   * Moves to another lane of the pools, at random: its own ran dry, or another server's commit
   * overtook one of its own (most likely a server picking in the same lane). Returns it.
   */
  private readonly hopLane = (): string => {
    this.ownLane = otherLane(this.ownLane ?? '0');
    return this.ownLane;
  };

  private poolRead(index: PoolIndex, limit: number, atOrBefore: number | undefined): PoolRead {
    const lane = this.ownLane;
    // Only the free pool moves the lane: the cooling pool's keys that may go are few, and a
    // lane with none of them is no reason to leave the free keys of its own.
    return lane === undefined || index !== 'unallocated'
      ? { index, limit, atOrBefore, lane }
      : { index, limit, atOrBefore, lane, hop: this.hopLane };
  }

  /** This server's own wall clock (the option `clock`): only compared with the database's. */
  private readonly localClock: () => number;
  /** One server of several (presence `server`): commits check no maintenance runs alone. */
  private readonly beside: boolean;

  /** Connects, migrates (or refuses a newer schema), and opens the secrets. */
  static async open(url: string, opts: PgStoreOptions = {}): Promise<PgStore> {
    const connection = pgConnection(url, opts.password, opts.ssl);
    const connecting = {
      ...connection,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    };
    // Taken before anything else: a refused command has migrated nothing.
    const presence =
      opts.presence === undefined ? undefined : await Presence.take(connecting, opts.presence);
    const pool = new pg.Pool({ ...connecting, max: opts.poolSize ?? 10 });
    // A connection lost while idle, or while checked out, emits 'error'; unheard, node would
    // crash. The calls that use the connection fail on their own and are answered as
    // STORE_UNAVAILABLE, so these events only need hearing.
    pool.on('error', () => undefined);
    pool.on('connect', (client) => client.on('error', () => undefined));
    try {
      await guarded('migrating its schema', async () => {
        const client = await pool.connect();
        try {
          await migrate(client);
          client.release();
        } catch (err) {
          client.release(true);
          throw err;
        }
      });
      const { counts, next } = await readCounters(poolRun(pool));
      const secrets = opts.kek
        ? await openSecrets(pgSecretsMeta(pool), opts.kek, opts.extraKeks)
        : lockedCodec;
      const mono = performance.now();
      const db = await readDatabaseClock(poolRun(pool));
      const store = new PgStore(pool, connection, opts, secrets, counts, next, presence);
      store.anchor({ db, mono: (mono + performance.now()) / 2 });
      return store;
    } catch (err) {
      await pool.end().catch(() => undefined);
      await presence?.release();
      throw storeError(err, 'opening');
    }
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /**
   * A round trip to the database: STORE_UNAVAILABLE while it cannot be reached (readiness);
   * CLOCK_SKEW while this server's wall clock is off the database's by more than MAX_SKEW_MS.
   * Servers that share a store compare times each wrote (a release's, a hold's): a clock set
   * ahead would end coolings early on the server that hands keys out.
   */
  async ping(): Promise<void> {
    // A database that restarted ended the presence lock's session too: it is taken again.
    await this.presence?.ensure();
    await this.refresh();
    const sent = this.localClock();
    const mono = performance.now();
    const db = await readDatabaseClock(this.run);
    const back = this.localClock();
    this.anchor({ db, mono: (mono + performance.now()) / 2 });
    const skew = db - (sent + back) / 2;
    // The round trip bounds the error of the estimate; only a skew beyond it counts.
    if (Math.abs(skew) > MAX_SKEW_MS + (back - sent) / 2)
      throw new PkmError(
        'CLOCK_SKEW',
        `this server's clock is ${Math.round(skew)} ms off the database's (at most ${MAX_SKEW_MS} ms): set it right (NTP)`,
      );
  }

  /**
   * The database's clock, as this server counts it: anchored at open and at each ping, and
   * carried between anchors on the monotonic clock, so a step of this server's wall clock (an
   * NTP correction) moves nothing. Every server of a shared store writes and compares its
   * times (a release's, a hold's) on it, so they agree whatever their own clocks say; it never
   * goes back.
   */
  readonly sharedClock = (): number => {
    const { db, mono } = this.anchored;
    this.lastShared = Math.max(this.lastShared, Math.round(db + (performance.now() - mono)));
    return this.lastShared;
  };

  private anchored: { db: number; mono: number } = { db: Date.now(), mono: performance.now() };
  private lastShared = 0;

  private anchor(at: { db: number; mono: number }): void {
    this.anchored = at;
  }

  async refresh(): Promise<void> {
    if (this.closed) throw new PkmError('NOT_READY', 'the store is closed');
    const { counts, next } = await readCounters(this.run);
    // Only forward: a commit of this server's may have landed after the read began.
    if (next >= this.nextIndex) {
      this.stored = counts;
      this.nextIndex = next;
    }
  }

  leadership(): Leadership {
    return this.leader;
  }

  /**
   * The database's one token, made by the first server that asks: a pod's heartbeats may reach
   * any server, and its proofs (over the token) must hold at all of them.
   */
  async bootToken(): Promise<string> {
    return (
      (await this.getMeta(BOOT_TOKEN)) ??
      putIfAbsent(this.pool, BOOT_TOKEN, randomBytes(16).toString('hex'))
    );
  }

  /**
   * How many pkm servers have this database open, this one included (their presence locks);
   * undefined for a store opened without one.
   */
  async serversRunning(): Promise<number | undefined> {
    return this.presence === undefined ? undefined : (await this.presence.holders()).servers;
  }

  /**
   * Runs `read` on one snapshot of the database (snapshot.ts), a read-only transaction apart
   * from commit()'s: `pkm db check` sees one instant while servers write.
   */
  async snapshot<T>(read: (view: StoreReads) => Promise<T>): Promise<T> {
    if (this.closed) throw new PkmError('NOT_READY', 'the store is closed');
    const client = await guarded('beginning a snapshot', () => this.pool.connect());
    try {
      const result = await readSnapshot(client, read);
      client.release();
      return result;
    } catch (err) {
      client.release(err instanceof Error ? err : true);
      throw err;
    }
  }

  async getMeta(key: string): Promise<string | undefined> {
    const res = await this.query('reading meta', 'SELECT value FROM pkm_meta WHERE key = $1', [
      key,
    ]);
    return parseRows(TextValue, res.rows, 'meta')[0]?.value;
  }

  nextKeyIndex(): number {
    return this.nextIndex;
  }

  async bindKeySource(fingerprint: string | undefined): Promise<void> {
    let stored = await this.getMeta(MetaKey.mnemonicFingerprint);
    // Bound by the first one: a second server binding at once finds the first one's value.
    if (stored === undefined && fingerprint !== undefined)
      stored = await putIfAbsent(this.pool, MetaKey.mnemonicFingerprint, fingerprint);
    if (stored === fingerprint || stored === undefined) return;
    throw new PkmError(
      'MNEMONIC_MISMATCH',
      fingerprint === undefined
        ? 'this store derives keys from a mnemonic: pass the same --mnemonic-file'
        : 'this store was created with a different mnemonic (or passphrase): pass the one it was created with',
    );
  }

  storedCounts(): Counts {
    return { ...this.stored };
  }

  async getPod(name: string): Promise<PodRecord | undefined> {
    return readPod(this.run, name);
  }

  async getPods(names: readonly string[]): Promise<Map<string, PodRecord>> {
    return readPodsNamed(this.run, names);
  }

  async getKey(pubkey: string): Promise<KeyRecord | undefined> {
    const res = await this.query(
      'reading a key',
      'SELECT pubkey, record FROM pkm_keys WHERE pubkey = $1',
      [pubkey],
    );
    const [row] = parseRows(KeyRow, res.rows, 'key');
    return row && keyRecordCodec.decode(row.record);
  }

  async getKeys(pubkeys: readonly string[]): Promise<KeyRecord[]> {
    return readKeys(this.run, pubkeys);
  }

  /** An index range scan of the pool: see pool-reads.ts. */
  async oldest(
    index: PoolIndex,
    limit: number,
    atOrBefore?: number,
    passOver?: PassOver,
  ): Promise<IndexEntry[]> {
    if (passOver === undefined || passOver.size === 0)
      return readOldest(this.run, this.poolRead(index, limit, atOrBefore));
    // Read past as many as may be passed over, then drop them.
    const read = await readOldest(
      this.run,
      this.poolRead(index, limit + passOver.size, atOrBefore),
    );
    return read.filter((e) => !passOver.has(e.pubkey)).slice(0, limit);
  }

  async oldestRecords(
    index: PoolIndex,
    limit: number,
    opts: { readonly atOrBefore?: number; readonly need?: number } = {},
  ): Promise<PoolRecords> {
    const read = this.poolRead(index, limit, opts.atOrBefore);
    return readOldestRecords(
      this.run,
      opts.need === undefined ? read : { ...read, need: opts.need },
    );
  }

  async countCoolingAfter(cutoff: number): Promise<number> {
    const res = await this.query(
      'counting cooling keys',
      "SELECT count(*) AS n FROM pkm_keys WHERE pool = 'cooling' AND since > $1",
      [Math.floor(cutoff)],
    );
    return parseOne(CountRow, res.rows, 'count').n;
  }

  async indexEntries(index: PoolIndex): Promise<IndexEntry[]> {
    return readIndex(this.run, index);
  }

  /** Keyset pages by name: each page is an index range scan after the last name seen. */
  pods(opts: { after?: string } = {}): AsyncGenerator<[string, PodRecord]> {
    return readPods(this.run, opts.after);
  }

  keyRecords(): AsyncGenerator<KeyRecord> {
    return readKeyRecords(this.run);
  }

  async events(since: number, limit: number): Promise<AuditEvent[]> {
    if (limit <= 0) return [];
    const res = await this.query(
      'reading the audit log',
      'SELECT event FROM pkm_audit WHERE seq >= $1 ORDER BY seq LIMIT $2',
      [Math.max(0, since), limit],
    );
    return parseRows(EventRow, res.rows, 'audit event').map((r) => decodeEvent(r.event));
  }

  async lastEvents(
    types: ReadonlySet<string>,
    limit: number,
    scan = 10_000,
  ): Promise<AuditEvent[]> {
    if (limit <= 0 || scan <= 0) return [];
    // Numbers are dense (0, 1, 2...): the last `scan` events are those above max - scan.
    const res = await this.query(
      'reading the audit log',
      `SELECT event FROM pkm_audit
       WHERE type = ANY($1) AND seq > (SELECT coalesce(max(seq), -1) FROM pkm_audit) - $3
       ORDER BY seq DESC LIMIT $2`,
      [[...types], limit, scan],
    );
    return parseRows(EventRow, res.rows, 'audit event').map((r) => decodeEvent(r.event));
  }

  /**
   * One transaction (write.ts), committed durably before this resolves. The change is checked
   * whole first: a refused change sends nothing to the database. The in-memory counters and
   * next index move only once the transaction committed.
   */
  async commit(change: Change): Promise<void> {
    // The index the change's derivations started from: refresh() (the readiness probe's, every
    // 2 s) may have moved this.nextIndex past it while the group ran, another server having
    // taken those indexes: a conflict, and the group runs again from the index as it is now.
    const from = change.keyIndexBasis ?? this.nextIndex;
    if (change.nextKeyIndex !== undefined && from < this.nextIndex)
      throw new StoreConflict('the next key index', {
        counts: this.storedCounts(),
        nextKeyIndex: this.nextIndex,
      });
    const plan = planChange(change, from);
    // Several servers (issue 15, point 3): a before-image mismatch refuses the change whole
    // (STORE_CONFLICT); the group committer re-reads and runs it again, a bounded number of times.
    const basis = {
      nextKeyIndex: from,
      leaderPid: this.leader.lockPid,
      now: this.sharedClock(),
      presence: this.beside,
    };
    const written = await guarded('committing a change', async () => {
      const client = await this.unlessClosed(this.pool.connect());
      try {
        const done = await writePlan(client, plan, basis);
        client.release();
        return done;
      } catch (err) {
        // A connection that failed mid-transaction is not given back to the pool; one that
        // rolled back a refused change is fine.
        client.release(err instanceof PkmError ? undefined : err instanceof Error ? err : true);
        if (err instanceof StoreConflict) {
          if (this.ownLane !== undefined) this.hopLane();
          this.stored = err.now.counts;
          this.nextIndex = err.now.nextKeyIndex;
        }
        throw err;
      }
    });
    this.stored = written.counts;
    this.nextIndex = written.nextKeyIndex;
  }

  keyRing(): KeyRing {
    return requireKeyRing(this.secrets);
  }

  /**
   * VACUUM FULL of the meta table (a few rows): it rewrites the table's file, so an old
   * wrapped data key overwritten by a KEK rotation leaves the table's storage (the WAL keeps
   * it until its segments are recycled). The other tables get a plain VACUUM, which only
   * marks their dead rows reusable: their values are sealed by the data key.
   */
  async compact(): Promise<void> {
    await this.query('compacting meta', 'VACUUM FULL pkm_meta', []);
    await this.query('vacuuming', 'VACUUM pkm_keys, pkm_pods', []);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.signalClosed(new PkmError('NOT_READY', 'the store is closed'));
    await this.leader.stop();
    await this.pool.end().catch(() => undefined);
    await this.presence?.release();
  }

  /** Runs one statement on the pool (reads.ts). */
  private readonly run: Run = (doing, sql, params) => this.query(doing, sql, params);

  private async query(doing: string, sql: string, params: readonly unknown[]) {
    if (this.closed) throw new PkmError('NOT_READY', 'the store is closed');
    return guarded(doing, () => this.unlessClosed(this.pool.query(sql, [...params])));
  }

  /**
   * A call that still waits for a connection when the store closes fails then (NOT_READY), not
   * at the pool's connect timeout: pg's Pool.end() leaves such waiters waiting.
   */
  private unlessClosed<T>(call: Promise<T>): Promise<T> {
    return Promise.race([call, this.closedSignal]);
  }
}

async function getMeta(pool: pg.Pool, key: string): Promise<string | undefined> {
  const res = await guarded('reading meta', () =>
    pool.query('SELECT value FROM pkm_meta WHERE key = $1', [key]),
  );
  return parseRows(TextValue, res.rows, 'meta')[0]?.value;
}

/** Inserts unless present (durably: synchronous_commit is on); returns the stored value. */
async function putIfAbsent(pool: pg.Pool, key: string, value: string): Promise<string> {
  await guarded('writing meta', async () => {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL synchronous_commit = on');
      await client.query(
        'INSERT INTO pkm_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING',
        [key, value],
      );
      await client.query('COMMIT');
      client.release();
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release(true);
      throw err;
    }
  });
  const stored = await getMeta(pool, key);
  if (stored === undefined) throw new PkmError('STORE_CORRUPT', `meta ${key} vanished`);
  return stored;
}

function pgSecretsMeta(pool: pg.Pool): SecretsMeta {
  return {
    get: (key) => getMeta(pool, key),
    putIfAbsent: (key, value) => putIfAbsent(pool, key, value),
  };
}

/** Runs one statement on `pool`, before a store exists (open()). */
function poolRun(pool: pg.Pool): Run {
  return (doing, sql, params) => guarded(doing, () => pool.query(sql, [...params]));
}

/** The database's wall clock now (ms since epoch). */
async function readDatabaseClock(run: Run): Promise<number> {
  const res = await run(
    'reading its clock',
    'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS n',
    [],
  );
  return parseOne(CountRow, res.rows, 'clock').n;
}
