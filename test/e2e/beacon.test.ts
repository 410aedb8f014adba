// pkm server --beacon-url: what the server does at start with the node it is given.
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/errors.js';
import { fakeBeacon } from '../beacon/fake-beacon.js';
import { type AllocationBody, http, tempDir } from '../helpers.js';
import { runPkm, startServerProcess } from './spawn.js';

const ADDRESS = '0xf93ee4cf8c6c40b329b0c0626f28333c132cf241';
const hoodi = (data: string, beaconUrl: string) => [
  '--data-dir',
  data,
  '--network',
  'hoodi',
  '--withdrawal-address',
  ADDRESS,
  '--beacon-url',
  beaconUrl,
];

describe('pkm server --beacon-url', () => {
  it('refuses to start on a beacon node of another network: exit 2, no data dir', async () => {
    const beacon = await fakeBeacon({ prefix: '/beacon' });
    // Mainnet's root, where --network says hoodi.
    beacon.state.genesis.genesis_validators_root =
      '0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95';
    const data = join(await tempDir(), 'data');
    const child = runPkm([
      'server',
      '--listen',
      '127.0.0.1:0',
      ...hoodi(data, `${beacon.url}/beacon/`),
    ]);
    expect(await child.exited).toBe(ExitCode.usage);
    expect(child.stderr).toEqual([
      expect.stringMatching(
        /^pkm: INVALID_CONFIG: --beacon-url http:\/\/127\.0\.0\.1:\d+\/beacon follows another network than --network hoodi: genesis_validators_root 0x4b363db9\w+, not 0x212f13fc\w+$/,
      ),
    ]);
    expect(beacon.calls).toEqual(['GET /beacon/eth/v1/beacon/genesis']);
    await expect(stat(data)).rejects.toThrow(/ENOENT/); // no store, no KEK made
  });

  it.each([
    [['--beacon-url', 'http://127.0.0.1:5052'], /--beacon-url needs --network/],
    [
      ['--network', 'hoodi', '--withdrawal-address', ADDRESS, '--beacon-url', 'ftp://beacon'],
      /--beacon-url must be http or https/,
    ],
    [
      ['--network', 'hoodi', '--withdrawal-address', ADDRESS, '--beacon-url', 'http://b/?key=1'],
      /--beacon-url takes no query or fragment/,
    ],
  ])('refuses %j with exit 2 and no data dir', async (args, message) => {
    const data = join(await tempDir(), 'data');
    const child = runPkm(['server', '--listen', '127.0.0.1:0', '--data-dir', data, ...args]);
    expect(await child.exited).toBe(ExitCode.usage);
    expect(child.stderr).toEqual([expect.stringMatching(message)]);
    await expect(stat(data)).rejects.toThrow(/ENOENT/);
  });

  it('starts with the gate closed while the node syncs, and opens it once synced', async () => {
    const beacon = await fakeBeacon();
    beacon.state.syncing.is_syncing = true;
    const server = await startServerProcess([
      ...hoodi(await tempDir(), beacon.url),
      '--reuse-delay',
      '0',
      // No keys were held before this start: nothing to wait for.
      '--resync-window',
      '0',
    ]);
    const warning = server.stdout
      .map((l) => JSON.parse(l) as { msg?: string; reason?: string })
      .find((m) => m.msg?.startsWith('liveness gate closed'));
    expect(warning?.reason).toMatch(/is syncing/);

    // Pods get new keys and their own keys back: neither needs the gate.
    const [key] = (
      await http<AllocationBody>(server.url, 'POST', '/v1/pods/old/keys', { count: 1 })
    ).body.keys.map((k) => k.pubkey);
    expect(key).toBeDefined();
    await http(server.url, 'DELETE', '/v1/pods/old/keys');
    // Its cooled key moving to another pod does, and waits.
    const closed = await http(server.url, 'POST', '/v1/pods/new/keys', { count: 1 });
    expect([closed.status, closed.body.error.code]).toEqual([503, 'BEACON_UNAVAILABLE']);
    expect(closed.headers.get('retry-after')).toBe('15');

    beacon.state.syncing.is_syncing = false;
    const open = await http<AllocationBody>(server.url, 'POST', '/v1/pods/new/keys', {
      count: 1,
    });
    expect(open.status).toBe(200);
    expect(open.body.keys.map((k) => k.pubkey)).toEqual([key]);
    server.proc.kill('SIGTERM');
    expect(await server.exited).toBe(ExitCode.ok);
  });
});
