// Runs the built `pkm` (dist/cli.js) as a child process and stops it after the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { onCleanup } from '../helpers.js';
import { keepLogLine } from '../support/secret-ledger.js';

export const CLI = new URL('../../dist/cli.js', import.meta.url).pathname;

export interface Child {
  readonly proc: ChildProcess;
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
}

export function runPkm(args: string[], env: Record<string, string> = {}): Child {
  const proc = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const keep = (into: string[]) => (line: string) => {
    into.push(line);
    keepLogLine(line);
  };
  createInterface({ input: proc.stdout }).on('line', keep(stdout));
  createInterface({ input: proc.stderr }).on('line', keep(stderr));
  const exited = once(proc, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  onCleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  return { proc, stdout, stderr, exited };
}

/** Starts `pkm server` on 127.0.0.1 port 0 and waits for its "listening" line. */
export async function startServerProcess(
  args: string[],
  env: Record<string, string> = {},
): Promise<Child & { url: string }> {
  const child = runPkm(['server', '--listen', '127.0.0.1:0', ...args], env);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    for (const line of child.stdout) {
      const msg = JSON.parse(line) as { msg?: string; url?: string };
      if (msg.msg === 'listening' && msg.url) return { ...child, url: msg.url };
    }
    if (child.proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`pkm server did not start: ${child.stderr.join('\n')}`);
}
