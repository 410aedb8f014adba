// Who has a database open (issue 15): what LevelDB's LOCK file does for a data dir. Every pkm
// server holds a shared advisory lock for as long as its store is open; a maintenance command
// that must run alone (pkm db rotate-kek, pkm keys import, pkm db copy) holds the same lock
// exclusively. So such a command is refused (STORE_LOCKED) while any server runs on the
// database, and a server is refused while such a command runs; several servers share it.
// A session-level lock lives as long as its session: each holder keeps a connection of its
// own (so this needs a direct session, not a transaction-pooling proxy). Advisory locks are
// per database: servers on another database of the same cluster do not count.
import pg from 'pg';
import { z } from 'zod';
import { PkmError } from '../../errors.js';
import { guarded } from './errors.js';
import { parseOne, parseRows } from './rows.js';

/**
 * Any key unlike schema.ts's MIGRATION_LOCK (0x706b6d00) and leader.ts's LEADER_LOCK
 * (0x706b6d02): "pkm" and 1.
 */
export const PRESENCE_LOCK = 0x706b6d01;

/** `server`: one of many (shared); `alone`: nothing else may have the database (exclusive). */
export type PresenceMode = 'server' | 'alone';

const Taken = z.object({ ok: z.boolean() });
const Holders = z.object({ mode: z.string(), n: z.number().int() });

const TRY: Record<PresenceMode, string> = {
  server: 'SELECT pg_try_advisory_lock_shared($1) AS ok',
  alone: 'SELECT pg_try_advisory_lock($1) AS ok',
};

/** Who holds the lock now, for the refusal's message (pg_locks: one bigint key is objid). */
async function holders(client: pg.Client): Promise<{ servers: number; alone: number }> {
  const res = await client.query(
    `SELECT mode, count(*)::int AS n FROM pg_locks
     WHERE locktype = 'advisory' AND granted AND classid = 0 AND objid::bigint = $1
       AND objsubid = 1
       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
     GROUP BY mode`,
    [PRESENCE_LOCK],
  );
  const rows = parseRows(Holders, res.rows, 'lock');
  const count = (mode: string) => rows.find((r) => r.mode === mode)?.n ?? 0;
  return { servers: count('ShareLock'), alone: count('ExclusiveLock') };
}

function refusal(mode: PresenceMode, found: { servers: number; alone: number }): PkmError {
  if (mode === 'server' || found.alone > 0)
    return new PkmError(
      'STORE_LOCKED',
      'a maintenance command (pkm db rotate-kek, pkm keys import or pkm db copy) is running on this database: wait until it has finished',
    );
  return new PkmError(
    'STORE_LOCKED',
    `${found.servers === 0 ? 'a' : found.servers} pkm server${found.servers > 1 ? 's are' : ' is'} running on this database: stop every server first (nothing was changed)`,
  );
}

export class Presence {
  private lost = false;
  private ended = false;

  private constructor(
    private client: pg.Client,
    private readonly settings: pg.ClientConfig,
    readonly mode: PresenceMode,
  ) {
    this.watch(client);
  }

  /** Takes the lock on a session of its own, or STORE_LOCKED naming who holds it. */
  static async take(settings: pg.ClientConfig, mode: PresenceMode): Promise<Presence> {
    return new Presence(await Presence.session(settings, mode), settings, mode);
  }

  private static async session(settings: pg.ClientConfig, mode: PresenceMode): Promise<pg.Client> {
    // A round trip that hangs (a network gone quiet) fails in time, so readiness moves on.
    const client = new pg.Client({ ...settings, query_timeout: 10_000 });
    // Heard before connecting: an unheard 'error' would crash the process.
    client.on('error', () => undefined);
    try {
      await guarded('taking its presence lock', () => client.connect());
      const res = await guarded('taking its presence lock', () =>
        client.query(TRY[mode], [PRESENCE_LOCK]),
      );
      if (!parseOne(Taken, res.rows, 'lock').ok)
        throw refusal(mode, await guarded('reading its locks', () => holders(client)));
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw err;
    }
  }

  private watch(client: pg.Client): void {
    // The session ended (the database restarted, the connection broke): the lock is gone.
    const gone = () => {
      if (client === this.client) this.lost = true;
    };
    client.on('error', gone);
    client.on('end', gone);
  }

  /** False once the session that held the lock has gone, until ensure() takes it again. */
  get held(): boolean {
    return !this.lost && !this.ended;
  }

  /**
   * Takes the lock again on a new session if the old one was lost (the database restarted);
   * STORE_LOCKED if a maintenance command took it meanwhile.
   */
  async ensure(): Promise<void> {
    if (this.ended) throw new PkmError('NOT_READY', 'the store is closed');
    // A session can be gone before its client hears of it: a round trip on it tells.
    if (!this.lost)
      await this.client.query('SELECT 1').then(
        () => undefined,
        () => {
          this.lost = true;
        },
      );
    if (!this.lost) return;
    const client = await Presence.session(this.settings, this.mode);
    const old = this.client;
    this.client = client;
    this.lost = false;
    this.watch(client);
    await old.end().catch(() => undefined);
  }

  /** How many hold the lock now: servers (shared) and maintenance commands (alone). */
  async holders(): Promise<{ servers: number; alone: number }> {
    if (this.ended) throw new PkmError('NOT_READY', 'the store is closed');
    return guarded('reading its locks', () => holders(this.client));
  }

  /** Ends the session, which releases the lock. */
  async release(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.client.end().catch(() => undefined);
  }
}
