// A start on another chain than the one the store's slashing protection was uploaded for is
// refused, before it writes anything (EIP-3076: a history is only good for its own chain).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NETWORKS } from '../../src/deposit/networks.js';
import { ExitCode } from '../../src/errors.js';
import { Store } from '../../src/store/store.js';
import { type AllocationBody, http, tempDir } from '../helpers.js';
import { runPkm, startServerProcess } from './spawn.js';

const HOODI = NETWORKS.hoodi.genesisValidatorsRoot ?? '';

function interchange(root: string, pubkeys: string[]) {
  return {
    metadata: { interchange_format_version: '5', genesis_validators_root: root },
    data: pubkeys.map((pubkey) => ({
      pubkey,
      signed_blocks: [{ slot: '64' }],
      signed_attestations: [{ source_epoch: '1', target_epoch: '2' }],
    })),
  };
}

describe('a start on another chain than the store', () => {
  it('is refused when --network or --genesis-validators-root contradicts the stored root, and changes nothing', async () => {
    const dir = join(await tempDir(), 'data');
    const root = `0x${'77'.repeat(32)}`;
    const first = await startServerProcess(['--data-dir', dir]);
    const [k] = (await http<AllocationBody>(first.url, 'POST', '/v1/pods/p/keys', { count: 1 }))
      .body.keys;
    const up = await http(
      first.url,
      'POST',
      '/v1/pods/p/slashing-protection',
      interchange(root, [k?.pubkey ?? '']),
    );
    expect(up.status).toBe(200);
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(ExitCode.ok);
    const entries = async () => {
      const store = await Store.open(dir);
      try {
        return await store.rawEntries();
      } finally {
        await store.close();
      }
    };
    const before = await entries();

    for (const [flags, named] of [
      [['--network', 'hoodi'], `--network hoodi has genesis_validators_root ${HOODI}`],
      [
        ['--genesis-validators-root', `0x${'55'.repeat(32)}`],
        `--genesis-validators-root has genesis_validators_root 0x${'55'.repeat(32)}`,
      ],
    ] as const) {
      const child = runPkm(['server', '--data-dir', dir, '--listen', '127.0.0.1:0', ...flags]);
      expect(await child.exited).toBe(ExitCode.usage);
      expect(child.stderr.join('\n')).toContain(`pkm: INVALID_CONFIG: ${named}`);
      expect(child.stderr.join('\n')).toContain(`was uploaded for ${root}`);
    }
    expect(await entries()).toEqual(before);

    const same = await startServerProcess(['--data-dir', dir, '--genesis-validators-root', root]);
    same.proc.kill('SIGTERM');
    expect(await same.exited).toBe(ExitCode.ok);
  }, 60_000);
});
