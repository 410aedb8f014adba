// Leadership over one PostgreSQL database (issue 15, point 4): a session-level advisory lock,
// held on a connection of its own. PostgreSQL frees the lock when that session ends, however it
// ends (a clean stop, kill -9, a lost node once the database notices), so another server's next
// try takes it. This server gives the leadership up the moment its lock connection errors or
// stops answering, before the database may free the lock: the two are never leaders together,
// and a commit that needs the leadership (Change.leaderOnly) is checked against pg_locks too.
import pg from 'pg';
import type { Leadership } from '../contract.js';
import type { PgConnection } from './connection.js';

/**
 * The advisory lock's key (one 64-bit key): unlike schema.ts's MIGRATION_LOCK (0x706b6d00) and
 * presence.ts's PRESENCE_LOCK (0x706b6d01), which every server holds shared.
 */
export const LEADER_LOCK = 0x706b6d02;

export interface LeaderTimes {
  /** How often a server that is not the leader tries to take the lock (ms). */
  readonly campaignMs: number;
  /** How often the leader checks its lock connection (ms). */
  readonly pingMs: number;
  /** A check that takes longer than this loses the leadership (ms). */
  readonly pingTimeoutMs: number;
}

/**
 * Takeover within 15 s (issue 15): a dead leader's session ends at once when its process dies
 * (the kernel closes its socket); one cut off the network is dropped by the database within
 * about 11 s (keepalives below) while it deposes itself within pingMs + pingTimeoutMs (5 s);
 * a frozen one's within 8 s (idle_session_timeout); the others try every 2 s.
 */
export const LEADER_TIMES: LeaderTimes = { campaignMs: 2_000, pingMs: 2_000, pingTimeoutMs: 3_000 };

/**
 * Server-side keepalives on the lock session: a vanished leader's lock is freed in ~11 s. And
 * a session idle for 4 pings: a leader whose process is frozen (SIGSTOP, a VM paused) still
 * answers keepalives from its kernel, but sends no ping, so the database ends its session and
 * frees the lock (PostgreSQL 14+, idle_session_timeout). Once thawed, its next ping fails and
 * it deposes itself; meanwhile a signed deposit of its is refused (pg_locks, write.ts).
 */
function sessionSettings(times: LeaderTimes): string[] {
  const idleMs = Math.max(4 * times.pingMs, 2_000);
  return [
    'SET tcp_keepalives_idle = 5',
    'SET tcp_keepalives_interval = 2',
    'SET tcp_keepalives_count = 3',
    `SET idle_session_timeout = ${idleMs}`,
  ];
}

export interface LeaderLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export class PgLeader implements Leadership {
  private client: pg.Client | undefined;
  /** The session a server that does not lead tries the lock on. */
  private candidate: pg.Client | undefined;
  /** The lock session's backend pid while leader (checked in pg_locks by leaderOnly commits). */
  private pid: number | undefined;
  private readonly listeners = new Set<(leader: boolean) => void>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private busy = false;

  constructor(
    private readonly connection: PgConnection,
    private readonly log: LeaderLog | undefined,
    private readonly times: LeaderTimes = LEADER_TIMES,
  ) {}

  get isLeader(): boolean {
    return this.pid !== undefined;
  }

  /** The lock session's backend pid, while leader. */
  get lockPid(): number | undefined {
    return this.pid;
  }

  watch(listener: (leader: boolean) => void): () => void {
    this.listeners.add(listener);
    listener(this.isLeader);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    void this.tick();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const client = this.client;
    this.depose('stopping');
    // Ending the session frees the lock at once; an unlock first would only race it.
    await client?.end().catch(() => undefined);
    await this.dropCandidate();
  }

  private schedule(): void {
    if (!this.running) return;
    const ms = this.isLeader ? this.times.pingMs : this.times.campaignMs;
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      if (this.isLeader) await this.ping();
      else await this.campaign();
    } finally {
      this.busy = false;
      this.schedule();
    }
  }

  /**
   * One try for the lock, on the session kept from the last try (a new one only after an
   * error): a server that is not the leader keeps one idle connection, not one per try.
   */
  private async campaign(): Promise<void> {
    let client = this.candidate;
    try {
      if (!client) {
        client = this.connect();
        this.candidate = client;
        await client.connect();
        for (const sql of sessionSettings(this.times)) await client.query(sql);
      }
      const res = await client.query<{ got: boolean; pid: number }>(
        'SELECT pg_try_advisory_lock($1) AS got, pg_backend_pid() AS pid',
        [LEADER_LOCK],
      );
      const row = res.rows[0];
      if (!this.running || row?.got !== true || typeof row.pid !== 'number') {
        if (!this.running) await this.dropCandidate();
        return;
      }
      this.candidate = undefined;
      this.client = client;
      this.pid = row.pid;
      this.log?.info({ pid: row.pid }, 'leader: this server runs the once-only work');
      this.emit(true);
    } catch {
      // The database is away: a new session at the next tick.
      await this.dropCandidate();
    }
  }

  private connect(): pg.Client {
    const client = new pg.Client({
      ...this.connection,
      keepAlive: true,
      connectionTimeoutMillis: this.times.pingTimeoutMs,
      query_timeout: this.times.pingTimeoutMs,
    });
    // Heard, so a lost connection never crashes the process; it deposes this server at once.
    client.on('error', () => this.lost(client, 'its lock connection failed'));
    client.on('end', () => this.lost(client, 'its lock connection ended'));
    return client;
  }

  private async dropCandidate(): Promise<void> {
    const client = this.candidate;
    this.candidate = undefined;
    await client?.end().catch(() => undefined);
  }

  private async ping(): Promise<void> {
    const client = this.client;
    if (!client) return;
    try {
      // Still ours: the session lives and holds the lock (an admin may have killed it).
      const res = await client.query<{ held: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND pid = pg_backend_pid() AND classid = 0 AND objid = $1 AND objsubid = 1) AS held`,
        [LEADER_LOCK],
      );
      if (res.rows[0]?.held !== true) this.lost(client, 'its lock is no longer held');
    } catch {
      this.lost(client, 'its lock connection does not answer');
    }
  }

  private lost(client: pg.Client, why: string): void {
    if (client === this.candidate) this.candidate = undefined;
    if (client !== this.client) return;
    this.depose(why);
    client.end().catch(() => undefined);
  }

  private depose(why: string): void {
    if (this.pid === undefined) return;
    this.pid = undefined;
    this.client = undefined;
    this.log?.warn({ why }, 'leader no more: the once-only work stops here');
    this.emit(false);
  }

  private emit(leader: boolean): void {
    for (const l of this.listeners) {
      try {
        l(leader);
      } catch (err) {
        this.log?.warn({ err: String(err) }, 'a leadership listener failed');
      }
    }
  }
}
