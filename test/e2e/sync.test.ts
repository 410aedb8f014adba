// Durable before acknowledged (DESIGN.md, "Store" and "Key lifecycle"): the built `pkm server`
// runs under strace, and every answer to an allocation or a release must have been written
// only after a sync of the store that completed since its request arrived. The same check run
// on the server with unsynced commits (bench/unsynced-server.ts) must flag every answer.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AllocationBody, http, tempDir } from '../helpers.js';
import { CLI } from './spawn.js';
import { answersInTrace, ptraceRefusal, startTracedServer, type TracedAnswer } from './strace.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const UNSYNCED = join(ROOT, 'bench/unsynced-server.ts');
const PODS = 20;
const refusal = ptraceRefusal();

/** 20 allocations and 20 releases, one request at a time; returns the answers in the trace. */
async function tracedRun(command: (dataDir: string) => string[]): Promise<TracedAnswer[]> {
  const dir = await tempDir();
  const dataDir = join(dir, 'data');
  const server = await startTracedServer(command(dataDir), join(dir, 'trace'), ROOT);
  for (let i = 0; i < PODS; i++) {
    const path = `/v1/pods/sync-${i}/keys`;
    const allocated = await http<AllocationBody>(server.url, 'POST', path, { count: 2 });
    expect(allocated.status).toBe(200);
    expect(allocated.body.keys).toHaveLength(2);
    const released = await http<{ released: string[] }>(server.url, 'DELETE', path);
    expect(released.status).toBe(200);
    expect(released.body.released).toHaveLength(2);
  }
  const trace = await server.stop();
  const answers = answersInTrace(trace, server.port, dataDir);
  // The trace holds every request sent, in order, each answered 200: the check saw them all.
  expect(answers.map((a) => `${a.method} ${a.path} ${a.status}`)).toEqual(
    Array.from({ length: PODS }, (_, i) => [
      `POST /v1/pods/sync-${i}/keys 200`,
      `DELETE /v1/pods/sync-${i}/keys 200`,
    ]).flat(),
  );
  return answers;
}

const unsynced = (answers: readonly TracedAnswer[]) =>
  answers.filter((a) => !a.synced).map((a) => `${a.method} ${a.path}`);

describe('durable before acknowledged', () => {
  it('pkm server syncs the store before it answers each allocation and release', async (ctx) => {
    ctx.skip(refusal !== undefined, refusal);
    const answers = await tracedRun((dataDir) => [
      process.execPath,
      CLI,
      'server',
      '--data-dir',
      dataDir,
    ]);
    expect(unsynced(answers)).toEqual([]);
  }, 25_000);

  it('the check flags every answer of a server whose commits are not synced', async (ctx) => {
    ctx.skip(refusal !== undefined, refusal);
    const answers = await tracedRun((dataDir) => [
      process.execPath,
      '--import',
      'tsx',
      UNSYNCED,
      '--data-dir',
      dataDir,
    ]);
    expect(unsynced(answers)).toHaveLength(2 * PODS);
  }, 25_000);
});

describe('the trace check', () => {
  const data = '/tmp/pkm/data';
  const tcp = '27<TCP:[127.0.0.1:8000->127.0.0.1:50000]>';
  const log = `20<${data}/000003.log>`;
  const request = `11  read(${tcp}, "POST /v1/pods/p/keys HTTP/1.1\\r\\nhost: 127.0.0.1:8000\\r\\n"..., 65536) = 190`;
  const answer = `11  writev(${tcp}, [{iov_base="HTTP/1.1 200 OK\\r\\nx-request-id: 1"..., iov_len=655}], 1) = 655`;
  const check = (...lines: string[]) =>
    answersInTrace(lines.join('\n'), 8000, data).map((a) => a.synced);

  it("counts a sync of the store's log that returned between the request and its answer", () => {
    expect(check(request, `12  fdatasync(${log}) = 0`, answer)).toEqual([true]);
    expect(check(request, `12  fsync(${log}) = 0`, answer)).toEqual([true]);
    expect(check(request, '12  sync() = 0', answer)).toEqual([true]);
  });

  it('does not count a sync before the request, of another file, failed, or unfinished', () => {
    expect(check(`12  fdatasync(${log}) = 0`, request, answer)).toEqual([false]);
    expect(check(request, '12  fdatasync(5</tmp/other/000003.log>) = 0', answer)).toEqual([false]);
    // The folder, a table, the MANIFEST: none of them holds the batch.
    expect(check(request, `12  fsync(21<${data}>) = 0`, answer)).toEqual([false]);
    expect(check(request, `12  fdatasync(22<${data}/000005.ldb>) = 0`, answer)).toEqual([false]);
    expect(check(request, `12  fdatasync(23<${data}/MANIFEST-000002>) = 0`, answer)).toEqual([
      false,
    ]);
    expect(check(request, `12  fdatasync(${log}) = -1 EIO (Input/output error)`, answer)).toEqual([
      false,
    ]);
    expect(check(request, `12  sync_file_range(${log}, 0, 0, 0) = 0`, answer)).toEqual([false]);
    // Begun before the answer, returned after it: the answer did not wait for it.
    expect(
      check(
        request,
        `12  fdatasync(${log} <unfinished ...>`,
        answer,
        '12  <... fdatasync resumed>) = 0',
      ),
    ).toEqual([false]);
  });

  it('reads calls that strace split into unfinished and resumed lines', () => {
    expect(
      check(
        `11  read(${tcp},  <unfinished ...>`,
        '12  futex(0x1, FUTEX_WAKE, 1) = 1',
        '11  <... read resumed>"DELETE /v1/pods/p/keys HTTP/1.1\\r\\n"..., 65536) = 97',
        `12  fdatasync(${log} <unfinished ...>`,
        '13  write(3<pipe:[1]>, "x", 1) = 1',
        '12  <... fdatasync resumed>) = 0',
        `11  writev(${tcp}, [{iov_base="HTTP/1.1 200 OK\\r\\n"..., iov_len=450}], 1 <unfinished ...>`,
        '11  <... writev resumed>) = 450',
      ),
    ).toEqual([true]);
  });
});
