// The server's own log destination (src/log.ts createLogger without a destination): stdout,
// buffered. Lines go out in few writes when many come, and within the flush interval when few
// do. A child process runs the built logger; strace counts its writes to stdout.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { ptraceRefusal } from './e2e/strace.js';
import { onCleanup, tempDir, until } from './helpers.js';

const LOG = new URL('../dist/log.js', import.meta.url).href;
const refusal = ptraceRefusal();

/** Text of two, three and four bytes a character in UTF-8: the buffer counts bytes, not characters. */
const NON_ASCII = 'naïve ✓ 🔑';

/**
 * Logs `bursts` bursts of `perBurst` request-like lines (about 220 bytes, as the server's
 * request lines are), a turn of the event loop apart, as a server's groups of answers come;
 * then stays up for `linger` ms.
 */
const script = (bursts: number, perBurst: number, linger: number) => `
import { createLogger } from ${JSON.stringify(LOG)};
const log = createLogger('info');
for (let b = 0; b < ${bursts}; b++) {
  for (let i = 0; i < ${perBurst}; i++)
    log.info({ reqId: 'bf78ceeb-e1b6-4ae0-827b-7c43a88c1d79', method: 'POST', route: '/v1/pods/:pod/keys', pod: 'validator-' + b + '-' + i, caller: 'anonymous', status: 200, ms: 12, note: ${JSON.stringify(NON_ASCII)} }, 'request');
  await new Promise((r) => setTimeout(r, 1));
}
setTimeout(() => {}, ${linger});
`;

function runLogger(code: string, trace?: string) {
  const node = [process.execPath, '--input-type=module', '-e', code];
  const args = trace ? ['-f', '-qq', '-e', 'trace=write,writev', '-o', trace, '--', ...node] : node;
  const proc = spawn(trace ? 'strace' : process.execPath, trace ? args : args.slice(1), {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  createInterface({ input: proc.stdout }).on('line', (line) => lines.push(line));
  const exited = once(proc, 'exit');
  onCleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  return { proc, lines, exited };
}

describe('the server log on stdout', () => {
  it('writes 2,000 request lines that come in bursts in a few writes, and every line', async (ctx) => {
    ctx.skip(refusal !== undefined, refusal);
    const trace = join(await tempDir(), 'trace');
    const { lines, exited } = runLogger(script(100, 20, 300), trace);
    await exited;
    expect(lines).toHaveLength(2000);
    expect(new Set(lines.map((l) => JSON.parse(l).pod)).size).toBe(2000);
    expect(lines.filter((l) => JSON.parse(l).note !== NON_ASCII)).toEqual([]);
    // Writes of the node process to fd 1 (the pipe), whole or partial.
    const writes = (await readFile(trace, 'utf8'))
      .split('\n')
      .filter((l) => /\b(write|writev)\(1,/.test(l));
    // 2,000 lines of ~220 bytes are ~440 KB: at least 32 KiB a write but the last few, 14-20
    // writes. At 4 KiB a write, one write went out per burst: 100.
    expect(writes.length).toBeGreaterThan(0);
    expect(writes.length).toBeLessThanOrEqual(30);
  });

  it('gets a lone line out while the process runs on: the buffer is flushed on a timer', async () => {
    const code = `
import { createLogger } from ${JSON.stringify(LOG)};
createLogger('info').warn({ pod: 'validator-0' }, 'a lone alert');
setTimeout(() => {}, 60_000);
`;
    const { proc, lines } = runLogger(code);
    await until(() => lines.length === 1, 10_000);
    expect(proc.exitCode).toBeNull();
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ level: 40, msg: 'a lone alert' });
  });
});
