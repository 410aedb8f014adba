// Runs a server under `strace -f` and reads the trace: which HTTP answers were written only
// after a sync of the store since their request arrived (DESIGN.md, "Key lifecycle": a change
// is acknowledged only once it is durable).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { onCleanup } from '../helpers.js';
import { keepLogLine } from '../support/secret-ledger.js';

/** Request reads, response writes, and every sync call (traced, even those that do not count). */
const TRACED = [
  'read',
  'readv',
  'recvfrom',
  'recvmsg',
  'write',
  'writev',
  'sendto',
  'sendmsg',
  'fsync',
  'fdatasync',
  'sync_file_range',
  'syncfs',
  'sync',
  'msync',
];
const READS = new Set(['read', 'readv', 'recvfrom', 'recvmsg']);
const WRITES = new Set(['write', 'writev', 'sendto', 'sendmsg']);
/**
 * Calls that make a file durable. A batch is durable once LevelDB's write-ahead log (NNNNNN.log
 * in the data dir) is synced: on Linux with fdatasync (env_posix.cc; fsync is for new MANIFEST
 * files and the folder, and counts too when it is the log). Syncs of other files (tables, the
 * MANIFEST) do not make a batch durable. sync_file_range is traced but does not count: it
 * flushes no metadata and no disk cache (its man page: no durability guarantee); msync names no
 * file.
 */
const FILE_SYNCS = new Set(['fsync', 'fdatasync']);
const WHOLE_SYNCS = new Set(['sync', 'syncfs']);

/**
 * strace options: -yy names each fd (file paths, TCP endpoints); -s 64 shows a request's line
 * and a response's status line, never as far as a secret key in a body.
 */
const STRACE_ARGS = [
  '-f',
  '--seccomp-bpf',
  '-qq',
  '-yy',
  '-s',
  '64',
  '-e',
  `trace=${TRACED.join(',')}`,
  '-e',
  'signal=none',
];

/** Why this machine cannot trace (ptrace refused), or undefined when it can. */
export function ptraceRefusal(): string | undefined {
  const probe = spawnSync('strace', ['-f', '-qq', '-o', '/dev/null', '--', 'true'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (probe.error)
    throw new Error(`this test needs strace (Debian package strace): ${probe.error.message}`);
  if (probe.status === 0) return undefined;
  const said = probe.stderr.trim();
  if (/ptrace|not permitted/i.test(said)) return `ptrace is not permitted here: ${said}`;
  throw new Error(`strace failed: ${said}`);
}

export interface TracedServer {
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM, waiting for it and strace to exit) and returns the trace. */
  stop(): Promise<string>;
}

/**
 * Starts `command` (a server taking pkm server's flags) under strace, on 127.0.0.1 port 0, and
 * waits for its "listening" line. Cleanup kills both processes if the test did not stop them.
 */
export async function startTracedServer(
  command: readonly string[],
  traceFile: string,
  cwd: string,
): Promise<TracedServer> {
  const proc = spawn(
    'strace',
    [...STRACE_ARGS, '-o', traceFile, '--', ...command, '--listen', '127.0.0.1:0'],
    { cwd, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const stdout: string[] = [];
  const stderr: string[] = [];
  for (const [stream, into] of [
    [proc.stdout, stdout],
    [proc.stderr, stderr],
  ] as const)
    createInterface({ input: stream }).on('line', (line) => {
      into.push(line);
      keepLogLine(line);
    });
  const exited = once(proc, 'exit');
  // strace's child is the server: a signal to strace would detach it, not stop it.
  let tracee: number | undefined;
  const kill = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    if (tracee !== undefined) process.kill(tracee, 'SIGKILL');
    if (!(await exitedWithin(proc, exited, 5_000))) proc.kill('SIGKILL');
    await exited;
  };
  onCleanup(kill);
  const url = await listening(proc, stdout, stderr);
  tracee = await traceeOf(proc);
  return {
    url,
    port: Number(new URL(url).port),
    async stop() {
      if (tracee !== undefined) process.kill(tracee, 'SIGTERM');
      if (!(await exitedWithin(proc, exited, 10_000))) {
        await kill();
        throw new Error('the traced server did not stop within 10 s of SIGTERM');
      }
      return readFile(traceFile, 'utf8');
    },
  };
}

async function listening(proc: ChildProcess, stdout: string[], stderr: string[]): Promise<string> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    for (const line of stdout) {
      const msg = JSON.parse(line) as { msg?: string; url?: string };
      if (msg.msg === 'listening' && msg.url) return msg.url;
    }
    if (proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`the traced server did not start: ${stderr.join('\n')}`);
}

/** strace's one child: the traced server. */
async function traceeOf(proc: ChildProcess): Promise<number> {
  const pid = proc.pid;
  if (pid === undefined) throw new Error('strace did not start');
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8');
  const [first] = children.trim().split(/\s+/);
  if (first === undefined || first === '') throw new Error('strace has no child process');
  return Number(first);
}

async function exitedWithin(
  proc: ChildProcess,
  exited: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return true;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const done = await Promise.race([exited.then(() => true), timeout]);
  clearTimeout(timer);
  return done;
}

export interface TracedAnswer {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  /** A sync of the store completed after the request arrived and before the answer began. */
  readonly synced: boolean;
}

interface Call {
  readonly pid: string;
  readonly name: string;
  readonly args: string;
  /** The return value, or undefined while the call is unfinished. */
  readonly ret?: number;
}

/** One call per trace line, as strace prints it: whole, unfinished, or resumed. */
function* calls(trace: string): Generator<{ call: Call; at: 'entry' | 'exit' | 'both' }> {
  const pending = new Map<string, { name: string; args: string }>();
  for (const line of trace.split('\n')) {
    const head = /^(\d+)\s+(.*)$/.exec(line);
    if (!head) continue;
    const [, pid = '', rest = ''] = head;
    const unfinished = /^(\w+)\((.*) <unfinished \.\.\.>$/.exec(rest);
    if (unfinished) {
      const [, name = '', args = ''] = unfinished;
      pending.set(pid, { name, args });
      yield { call: { pid, name, args }, at: 'entry' };
      continue;
    }
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(rest);
    const started = resumed ? pending.get(pid) : undefined;
    if (resumed) pending.delete(pid);
    const text = resumed ? `${resumed[1]}(${started?.args ?? ''}${resumed[2]}` : rest;
    // The last ") = n" of the line is the return value (a string argument may hold others).
    const whole = /^(\w+)\((.*)\)\s+=\s+(-?\d+)(?:\s.*)?$/.exec(text);
    if (!whole) continue;
    const [, name = '', args = '', ret = ''] = whole;
    yield { call: { pid, name, args, ret: Number(ret) }, at: resumed ? 'exit' : 'both' };
  }
}

/** The first argument's fd annotation (-yy): a file path, or TCP:[local->remote]. */
function fdOf(args: string): string | undefined {
  // Lazy, up to the '>' that ends the first argument: a TCP name holds '->' itself.
  return /^\d+<(.*?)>(?:,|\)|$)/.exec(args)?.[1];
}

/**
 * Every HTTP answer the server wrote on 127.0.0.1:`port`, in order, with its request and
 * whether a sync of the store's log in `dataDir` (or of everything) completed between the request's
 * arrival and the start of the answer's first write. Requests go one at a time, so that window
 * also lies after the previous answer.
 */
export function answersInTrace(trace: string, port: number, dataDir: string): TracedAnswer[] {
  const local = `TCP:[127.0.0.1:${port}->`;
  /** Per connection: the request being answered, and whether a sync has completed since. */
  const open = new Map<string, { method: string; path: string; synced: boolean }>();
  const answers: TracedAnswer[] = [];
  for (const { call, at } of calls(trace)) {
    // A resumed call's args begin with those of the line it began on, so they name its fd.
    const fd = fdOf(call.args);
    if (FILE_SYNCS.has(call.name) || WHOLE_SYNCS.has(call.name)) {
      // A sync counts once it has returned 0: that is when the data is durable.
      if (at === 'entry' || call.ret !== 0) continue;
      const ofLog = fd?.startsWith(`${dataDir}/`) === true && /\/\d+\.log$/.test(fd);
      if (WHOLE_SYNCS.has(call.name) || ofLog) for (const req of open.values()) req.synced = true;
      continue;
    }
    if (fd === undefined || !fd.startsWith(local)) continue;
    if (READS.has(call.name) && at !== 'entry' && (call.ret ?? 0) > 0) {
      const line = /"(GET|HEAD|POST|PUT|DELETE|PATCH|OPTIONS) (\S+) HTTP\/1\.1/.exec(call.args);
      if (line) open.set(fd, { method: line[1] ?? '', path: line[2] ?? '', synced: false });
    } else if (WRITES.has(call.name) && at !== 'exit') {
      // The first string written: a write's buffer, or a writev's first iov_base.
      const status = /^\d+<.*?>, [^"]*"HTTP\/1\.1 (\d{3}) /.exec(call.args)?.[1];
      const req = open.get(fd);
      if (status === undefined || req === undefined) continue;
      answers.push({ ...req, status: Number(status) });
      open.delete(fd);
    }
  }
  return answers;
}
