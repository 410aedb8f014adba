import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { BeaconLivenessGate } from '../../src/beacon/liveness.js';
import { type AllocationBody, http, MINUTE, onCleanup, startTestServer } from '../helpers.js';

const GENESIS = 1_700_000_000;

/** A beacon node's standard API, the two calls the gate makes, with validators it knows. */
async function fakeBeacon(validators: Map<string, string>, liveIndices: Set<string>) {
  const calls: string[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    calls.push(`${req.method} ${url.pathname}`);
    if (req.method === 'GET' && url.pathname === '/eth/v1/beacon/states/head/validators') {
      const data = url.searchParams.getAll('id').flatMap((pk) => {
        const index = validators.get(pk);
        return index === undefined
          ? []
          : [
              {
                index,
                balance: '32000000000',
                status: 'active_ongoing',
                validator: { pubkey: pk, slashed: false },
              },
            ];
      });
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ execution_optimistic: false, finalized: false, data }));
      return;
    }
    if (req.method === 'POST' && url.pathname.startsWith('/eth/v1/validator/liveness/')) {
      let body = '';
      req
        .on('data', (c) => (body += c))
        .on('end', () => {
          const indices = JSON.parse(body) as string[];
          res.writeHead(200, { 'content-type': 'application/json' }).end(
            JSON.stringify({
              data: indices.map((index) => ({ index, is_live: liveIndices.has(index) })),
            }),
          );
        });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls };
}

describe('liveness gate (--beacon-url, against a fake beacon API)', () => {
  it('keeps a cooled key seen live from another pod, and counts it for an alert', async () => {
    const validators = new Map<string, string>();
    const live = new Set<string>();
    const beacon = await fakeBeacon(validators, live);
    const { url, clock } = await startTestServer({
      reuseDelayMs: MINUTE,
      liveness: new BeaconLivenessGate(beacon.url, GENESIS),
    });
    const old = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/old/keys', { count: 2 })
    ).body.keys.map((k) => k.pubkey);
    const [liveKey, quietKey] = old;
    if (!liveKey || !quietKey) throw new Error('setup');
    validators.set(liveKey, '7');
    validators.set(quietKey, '8');
    live.add('7'); // the old pod may still be running it
    await http(url, 'DELETE', '/v1/pods/old/keys');
    clock.advance(MINUTE);

    const next = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/new/keys', { count: 2 })
    ).body.keys.map((k) => k.pubkey);
    expect(next).toContain(quietKey);
    expect(next).not.toContain(liveKey);
    expect(beacon.calls).toContain(
      'POST /eth/v1/validator/liveness/' +
        Math.floor(Math.floor((clock.ms / 1000 - GENESIS) / 12) / 32),
    );
    expect((await http<string>(url, 'GET', '/metrics')).body).toMatch(
      /^pkm_liveness_held_back_total 1$/m,
    );

    // Once it is no longer live, it may move after the hold.
    live.delete('7');
    clock.advance(13 * MINUTE);
    const later = (
      await http<AllocationBody>(url, 'POST', '/v1/pods/later/keys', { count: 1 })
    ).body.keys.map((k) => k.pubkey);
    expect(later).toEqual([liveKey]);
  });

  it('fails closed when the beacon node does not answer: 503, nothing changed', async () => {
    const { url, clock, store } = await startTestServer({
      reuseDelayMs: MINUTE,
      liveness: new BeaconLivenessGate('http://127.0.0.1:9', GENESIS, 1000),
    });
    await http(url, 'POST', '/v1/pods/old/keys', { count: 1 });
    await http(url, 'DELETE', '/v1/pods/old/keys');
    clock.advance(MINUTE);
    const before = await store.rawEntries();
    const res = await http(url, 'POST', '/v1/pods/new/keys', { count: 1 });
    expect([res.status, res.body.error.code]).toEqual([503, 'BEACON_UNAVAILABLE']);
    expect(res.headers.get('retry-after')).toBe('15');
    expect(await store.rawEntries()).toEqual(before);
  });

  it('does not ask about keys that were never held, nor about a pod taking back its own', async () => {
    const beacon = await fakeBeacon(new Map(), new Set());
    const { url } = await startTestServer({
      reuseDelayMs: MINUTE,
      liveness: new BeaconLivenessGate(beacon.url, GENESIS),
    });
    await http(url, 'POST', '/v1/pods/a/keys', { count: 1 });
    await http(url, 'DELETE', '/v1/pods/a/keys');
    expect((await http(url, 'POST', '/v1/pods/a/keys', { count: 1 })).status).toBe(200);
    expect(beacon.calls).toEqual([]);
  });
});
