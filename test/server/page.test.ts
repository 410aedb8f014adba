import { describe, expect, it } from 'vitest';
import { checkStore } from '../../src/store/check.js';
import { http, startTestServer } from '../helpers.js';

const rows = (html: string) => [...html.matchAll(/<tr data-pod="([^"]*)"/g)].map((m) => m[1]);

describe('/assignments page', () => {
  it('shows totals per state and a row per pod with its public keys', async () => {
    const { url } = await startTestServer();
    const a = await http<{ keys: Array<{ pubkey: string }> }>(
      url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 2 },
    );
    await http(url, 'POST', '/v1/pods/validator-1/keys', { count: 1 });
    await http(url, 'POST', '/v1/pods/gone/keys', { count: 3 });
    await http(url, 'DELETE', '/v1/pods/gone/keys');

    const res = await fetch(`${url}/assignments`);
    const html = await res.text();
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'nonce-/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(html).toMatch(/<span class="n" data-state="allocated">3<\/span>/);
    expect(html).toMatch(/<span class="n" data-state="cooling">3<\/span>/);
    expect(html).toMatch(/<span class="n" data-state="free">0<\/span>/);
    expect(html).toMatch(/<span class="n" data-state="pods">2<\/span>/);
    expect(rows(html)).toEqual(['validator-0', 'validator-1']);
    const cell = /<td class="keys">([^<]*)<\/td>/.exec(html)?.[1]?.split('\n');
    expect(cell).toEqual(a.body.keys.map((k) => k.pubkey));
  });

  it('never shows a secret key', async () => {
    const { url } = await startTestServer();
    const a = await http<{ keys: Array<{ secretKey: string }> }>(
      url,
      'POST',
      '/v1/pods/validator-0/keys',
      { count: 3 },
    );
    const html = await (await fetch(`${url}/assignments`)).text();
    for (const k of a.body.keys) expect(html).not.toContain(k.secretKey.slice(2));
  });

  it('renders an HTML pod name as text, and the filter text too', async () => {
    const { url, store, allocator } = await startTestServer();
    const refused = await http(url, 'POST', '/v1/pods/%3Cscript%3E/keys', { count: 1 });
    expect(refused.status).toBe(400);
    // The API refuses such names, so plant one in the store to prove the page escapes anyway.
    await allocator.allocate('validator-0', 1);
    const pod = await store.getPod('validator-0');
    const evil = '<script>alert(1)</script>';
    const key = await store.getKey(pod?.keys[0] ?? '');
    if (!pod || !key) throw new Error('setup failed');
    await store.commit({
      keys: [{ before: key, after: { ...key, pod: evil } }],
      pods: [
        { name: 'validator-0', before: pod },
        { name: evil, after: pod },
      ],
    });
    expect((await checkStore(store)).problems).toEqual([]);

    const html = await (
      await fetch(`${url}/assignments?q=${encodeURIComponent('"><img src=x onerror=alert(2)>')}`)
    ).text();
    expect(html).not.toContain('<script>alert(1)');
    expect(html).not.toContain('<img src=x');
    expect(html).toContain('&quot;&gt;&lt;img src=x onerror=alert(2)&gt;');
    const all = await (await fetch(`${url}/assignments`)).text();
    expect(all).toContain('<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>');
  });

  it('filters by pod name or pubkey prefix, and pages with a cursor', async () => {
    const { url } = await startTestServer();
    const pubkeys: Record<string, string> = {};
    for (const pod of ['alpha-0', 'alpha-1', 'beta-0', 'beta-1', 'beta-2']) {
      const a = await http<{ keys: Array<{ pubkey: string }> }>(
        url,
        'POST',
        `/v1/pods/${pod}/keys`,
        { count: 1 },
      );
      pubkeys[pod] = a.body.keys[0]?.pubkey ?? '';
    }
    const page = async (query: string) => (await fetch(`${url}/assignments?${query}`)).text();
    expect(rows(await page('q=beta'))).toEqual(['beta-0', 'beta-1', 'beta-2']);
    expect(rows(await page(`q=${pubkeys['alpha-1']?.slice(0, 14)}`))).toEqual(['alpha-1']);
    expect(rows(await page('q=nothing-like-this'))).toEqual([]);

    const first = await page('limit=2');
    expect(rows(first)).toEqual(['alpha-0', 'alpha-1']);
    const next = /id="next" href="\/assignments\?([^"]+)"/
      .exec(first)?.[1]
      ?.replaceAll('&amp;', '&');
    expect(next).toBe('after=alpha-1&limit=2');
    expect(rows(await page(next ?? ''))).toEqual(['beta-0', 'beta-1']);
    expect(await page('after=beta-1&limit=2')).not.toContain('id="next"');
  });
});
