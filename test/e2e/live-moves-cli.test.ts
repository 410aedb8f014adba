// The CLI of live moves (issue 16): `pkm agent`'s Keymanager flags refused with a coded error
// before anything starts, `pkm move` and `pkm rebalance` against the built server, their exit
// codes, and bad input changing nothing.
import { describe, expect, it } from 'vitest';
import { http, tempDir } from '../helpers.js';
import { runPkm, startServerProcess } from './spawn.js';

async function pkm(args: string[]) {
  const child = runPkm(args);
  const code = await child.exited;
  return { code, stdout: child.stdout.join('\n'), stderr: child.stderr.join('\n') };
}

describe('pkm agent --keymanager-url, pkm move, pkm rebalance', () => {
  it('refuses bad Keymanager flags with INVALID_CONFIG (exit 2) before it starts', async () => {
    const out = await tempDir();
    const base = ['agent', '--server', 'http://127.0.0.1:1', '--pod', 'p', '--out', out];
    for (const [extra, says] of [
      [['--remote-signer-url', 'http://127.0.0.1:9000'], '--keymanager-url is required'],
      [['--keymanager-url', 'http://127.0.0.1:5062'], '--keymanager-token-file is required'],
      [['--keymanager-url', 'ftp://vc', '--keymanager-token-file', 't'], 'must be http or https'],
      [
        [
          '--keymanager-url',
          'http://vc',
          '--keymanager-token-file',
          't',
          '--remote-signer-token-file',
          't',
        ],
        '--remote-signer-url is required',
      ],
    ] as const) {
      const r = await pkm([...base, ...extra]);
      expect([extra, r.code]).toEqual([extra, 2]);
      expect(r.stderr).toContain('INVALID_CONFIG');
      expect(r.stderr).toContain(says);
    }
  });

  it('moves and rebalances through the server; bad input is refused with its code and changes nothing', async () => {
    const server = await startServerProcess([
      '--data-dir',
      await tempDir(),
      '--resync-window',
      '0',
    ]);
    const s = server.url;
    expect((await http(s, 'PUT', '/v1/pods/a/keys', { count: 3 })).status).toBe(200);
    expect((await http(s, 'PUT', '/v1/pods/b/keys', { count: 1 })).status).toBe(200);
    const before = await http(s, 'GET', '/v1/assignments');

    const bad = await pkm(['move', '--server', s, '--from', 'A', '--to', 'b', '--count', '1']);
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringContaining('INVALID_POD_NAME')]);
    const tooMany = await pkm(['move', '--server', s, '--from', 'a', '--to', 'b', '--count', '4']);
    expect([tooMany.code, tooMany.stderr]).toEqual([3, expect.stringContaining('COUNT_MISMATCH')]);
    const none = await pkm(['rebalance', '--server', s, '--selector', 'x-*']);
    expect([none.code, none.stderr]).toEqual([3, expect.stringContaining('NO_PODS_SELECTED')]);
    const noSelector = await pkm(['rebalance', '--server', s]);
    expect(noSelector.code).toBe(2);
    expect((await http(s, 'GET', '/v1/assignments')).body).toEqual(before.body);

    const moved = await pkm(['move', '--server', s, '--from', 'a', '--to', 'b', '--count', '1']);
    expect(moved.code).toBe(0);
    const answer = JSON.parse(moved.stdout) as { from: string; to: string; keys: string[] };
    expect(answer).toMatchObject({ from: 'a', to: 'b' });
    expect(answer.keys).toHaveLength(1);
    // c is new (no keys): b gives it one (a keeps 2 of the 4). No agent runs here, so --wait gives up,
    // naming the keys still in their old pods.
    const waited = await pkm(['rebalance', '--server', s, '--selector', 'a,b,c', '--wait', '1s']);
    expect([waited.code, waited.stderr]).toEqual([4, expect.stringContaining('TIMEOUT')]);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(0);
  }, 60_000);
});
