import { describe, expect, it } from 'vitest';
import { checkStore } from '../../src/store/check.js';
import {
  type AllocationBody,
  type AssignmentsBody,
  http,
  MINUTE,
  startTestServer,
} from '../helpers.js';

interface EventsBody {
  events: Array<{ seq: number; type: string; pod?: string; pubkeys: string[]; detail?: string }>;
  next: number;
}

const allocate = async (url: string, pod: string, count: number) =>
  (await http<AllocationBody>(url, 'POST', `/v1/pods/${pod}/keys`, { count })).body.keys.map(
    (k) => k.pubkey,
  );

describe('retiring keys', () => {
  it('takes a held key off its pod, counts it retired, and never hands it out again', async () => {
    const { url, store, clock } = await startTestServer({ reuseDelayMs: MINUTE });
    const [kept, retired] = await allocate(url, 'a', 2);
    const res = await http(url, 'POST', `/v1/keys/${retired}/retire`, { reason: 'slashed' });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ pubkey: retired, state: 'retired' });
    expect((await http(url, 'GET', '/v1/pods/a/keys')).body).toEqual({ pod: 'a', pubkeys: [kept] });
    expect((await http<AssignmentsBody>(url, 'GET', '/v1/assignments')).body.counts).toMatchObject({
      retired: 1,
      allocated: 1,
    });
    expect(await (await fetch(`${url}/assignments`)).text()).toMatch(/data-state="retired">1</);

    await http(url, 'DELETE', '/v1/pods/a/keys');
    clock.advance(MINUTE);
    const next = await allocate(url, 'b', 2);
    expect(next).toContain(kept);
    expect(next).not.toContain(retired);
    expect((await checkStore(store)).problems).toEqual([]);
  });

  it('is idempotent, and refuses unknown or malformed pubkeys', async () => {
    const { url, store } = await startTestServer();
    const [pk] = await allocate(url, 'a', 1);
    expect((await http(url, 'POST', `/v1/keys/${pk}/retire`, {})).status).toBe(200);
    const before = await store.rawEntries();
    expect((await http(url, 'POST', `/v1/keys/${pk}/retire`, {})).status).toBe(200);
    expect(await store.rawEntries()).toEqual(before);
    const unknown = await http(url, 'POST', `/v1/keys/0x${'ab'.repeat(48)}/retire`, {});
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'KEY_NOT_FOUND']);
    const bad = await http(url, 'POST', '/v1/keys/0x1234/retire', {});
    expect([bad.status, bad.body.error.code]).toEqual([400, 'INVALID_PUBKEY']);
    expect(await store.rawEntries()).toEqual(before);
  });
});

describe('audit log', () => {
  it('records allocate, release, reuse and retire in order, readable from a cursor', async () => {
    const { url, clock } = await startTestServer({ reuseDelayMs: MINUTE });
    const keys = await allocate(url, 'a', 2);
    await http(url, 'DELETE', '/v1/pods/a/keys');
    clock.advance(MINUTE);
    const reused = await allocate(url, 'b', 1);
    // The key pod b did not take is still cooling under pod a.
    const stillCooling = keys.find((k) => !reused.includes(k));
    await http(url, 'POST', `/v1/keys/${stillCooling}/retire`, { reason: 'exited' });

    const all = (await http<EventsBody>(url, 'GET', '/v1/events')).body;
    expect(all.events.map((e) => [e.seq, e.type, e.pod])).toEqual([
      [0, 'allocate', 'a'],
      [1, 'release', 'a'],
      [2, 'allocate', 'b'],
      [3, 'reuse', 'b'],
      [4, 'retire', 'a'],
    ]);
    expect(all.events[3]?.pubkeys).toEqual(reused);
    expect(all.events[3]?.detail).toMatch(/^from a, released at /);
    expect(all.events[4]?.detail).toBe('exited');
    expect(all.next).toBe(5);

    const page = (await http<EventsBody>(url, 'GET', '/v1/events?since=3&limit=1')).body;
    expect(page.events.map((e) => e.seq)).toEqual([3]);
    expect(page.next).toBe(4);
    expect((await http<EventsBody>(url, 'GET', '/v1/events?since=5')).body).toEqual({
      events: [],
      next: 5,
    });
    expect((await http(url, 'GET', '/v1/events?since=-1')).status).toBe(400);
  });
});
