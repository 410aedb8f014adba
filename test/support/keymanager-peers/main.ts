// A fake as a process of its own, so a test can kill -9 it, or kill the agent or the server
// while it lives: `node --import tsx main.ts vc|signer '<options as JSON>'` (child.ts spawns it).
// Once it listens it prints one line, `FAKE_PEER_READY {"url":…}`, and nothing secret; SIGTERM
// stops it cleanly, SIGKILL leaves its data dir as a crash would.
import { startFakeSigner } from './fake-signer.js';
import { startFakeVc } from './fake-vc.js';
import { FakeSignerOptions, FakeVcOptions } from './options.js';

export const READY = 'FAKE_PEER_READY';

async function main(): Promise<void> {
  const [kind, json] = process.argv.slice(2);
  const raw: unknown = JSON.parse(json ?? '{}');
  const peer =
    kind === 'vc'
      ? await startFakeVc(FakeVcOptions.parse(raw))
      : kind === 'signer'
        ? await startFakeSigner(FakeSignerOptions.parse(raw))
        : undefined;
  if (peer === undefined) throw new Error(`usage: main.ts vc|signer '<options>' (got ${kind})`);
  process.once('SIGTERM', () => {
    void peer.stop().then(() => process.exit(0));
  });
  process.stdout.write(`${READY} ${JSON.stringify({ url: peer.url, pid: process.pid })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`fake peer failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
