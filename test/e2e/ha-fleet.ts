// Several built `pkm server --store postgres://…` processes on one database, for issue 15's
// fault tests (point 5): a new database per test, the servers started on 127.0.0.1 (stopped
// after the test, failed or not: runPkm's cleanup), and a fleet that knows which of them the
// test has killed, so that requests go to the others as a Service would send them.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { tempDir } from '../helpers.js';
import { TEST_MNEMONIC } from '../keys/vectors.js';
import type { PgServer } from '../support/postgres.js';
import { rememberSecret } from '../support/secret-ledger.js';
import { type Child, startServerProcess } from './spawn.js';

/** The KEK every server of a test shares (hex, as --kek-file takes it). */
const KEK_HEX = '5e'.repeat(32);

let made = 0;

/** A new, empty database on `cluster`, and its URL (trust auth on loopback: no password). */
export async function newDatabase(cluster: PgServer, prefix: string): Promise<string> {
  const name = `${prefix}_${process.pid}_${++made}`;
  const admin = new pg.Client({ connectionString: cluster.url });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return `postgres://pkm@127.0.0.1:${cluster.port}/${name}`;
}

/** The files the servers share: the KEK, and the mnemonic keys are derived from. */
export async function sharedFiles(): Promise<{ kekFile: string; mnemonicFile: string }> {
  const dir = await tempDir();
  const kekFile = join(dir, 'kek');
  await writeFile(kekFile, `${KEK_HEX}\n`, { mode: 0o600 });
  const mnemonicFile = join(dir, 'mnemonic');
  await writeFile(mnemonicFile, TEST_MNEMONIC, { mode: 0o600 });
  rememberSecret(KEK_HEX);
  rememberSecret(TEST_MNEMONIC);
  return { kekFile, mnemonicFile };
}

export type ServerChild = Child & { url: string };

export class Fleet {
  private readonly dead = new Set<number>();
  /** When the test killed each dead server (Date.now()). */
  readonly killedAt = new Map<number, number>();

  private constructor(readonly servers: readonly ServerChild[]) {}

  /**
   * Starts `n` servers with the same arguments (they share the database), one after another:
   * each start is bounded (spawn.ts), and on a loaded machine three at once may not fit.
   */
  static async start(n: number, args: readonly string[]): Promise<Fleet> {
    const servers: ServerChild[] = [];
    for (let i = 0; i < n; i++) servers.push(await startServerProcess([...args]));
    return new Fleet(servers);
  }

  url(i: number): string {
    const s = this.servers[i];
    if (!s) throw new Error(`no server ${i}`);
    return s.url;
  }

  isAlive(i: number): boolean {
    return !this.dead.has(i);
  }

  /** The servers the test has not killed. */
  alive(): number[] {
    return this.servers.map((_, i) => i).filter((i) => this.isAlive(i));
  }

  /** `preferred` if it lives, else a live one at random (a Service routes around the dead). */
  pick(preferred: number): number {
    if (this.isAlive(preferred)) return preferred;
    const live = this.alive();
    const i = live[Math.floor(Math.random() * live.length)];
    if (i === undefined) throw new Error('every server is dead');
    return i;
  }

  /** kill -9; resolves once the process is gone. */
  async kill(i: number): Promise<void> {
    const s = this.servers[i];
    if (!s) throw new Error(`no server ${i}`);
    this.dead.add(i);
    this.killedAt.set(i, Date.now());
    s.proc.kill('SIGKILL');
    await s.exited;
  }
}
