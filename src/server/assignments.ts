// GET /v1/assignments (JSON) and GET /assignments (the page): pods -> public keys, and counts.
// Both stream: pods are read from LevelDB in order and written out in chunks.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { type Response, Router } from 'express';
import { stateCounts } from '../allocation/counts.js';
import { ROUTES } from '../api/paths.js';
import { PageQuery, parseQuery } from '../api/queries.js';
import { type Auth, requireAdmin } from './auth.js';
import type { AppDeps } from './deps.js';
import { methodNotAllowed } from './http-errors.js';
import { pageFoot, pageHead, podRow } from './page.js';

const CHUNK = 64 * 1024;

/**
 * Collects small writes and sends them in chunks of about CHUNK characters, waiting when the
 * socket is full. A chunk is joined from its parts at once: a string grown by `+=` is a rope,
 * which node:http flattens for the chunk's length (Buffer.byteLength), a fifth of a listing's
 * time once (issue 17, point 5).
 */
class ChunkWriter {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly res: Response) {}
  /**
   * Buffers `text`; a promise only when a chunk went out to a full socket (await it). Most
   * writes need none: 25,000 pods made 25,000 awaits of nothing (issue 17, point 5).
   */
  write(text: string): Promise<void> | undefined {
    this.parts.push(text);
    this.size += text.length;
    return this.size >= CHUNK ? this.flush() : undefined;
  }
  async end(text: string): Promise<void> {
    this.parts.push(text);
    await this.flush();
    this.res.end();
  }
  private async flush(): Promise<void> {
    const chunk = this.parts.join('');
    this.parts = [];
    this.size = 0;
    if (!this.res.write(chunk)) await once(this.res, 'drain');
  }
}

/**
 * The JSON of a pod's public keys, kept per keys array: a record is never changed in place
 * (records.ts), so an array's JSON stays right while the store's cache keeps the array, and
 * a listing of 25,000 cached pods serializes none again (issue 17, point 5). A changed pod
 * gets a new array, and the old one's entry goes with it (a WeakMap holds none alive).
 */
class KeysJson {
  private readonly texts = new WeakMap<readonly string[], string>();
  of(keys: readonly string[]): string {
    let text = this.texts.get(keys);
    if (text === undefined) {
      text = JSON.stringify(keys);
      this.texts.set(keys, text);
    }
    return text;
  }
}

/** Pod name contains q, or (q hex) one of its pubkeys starts with it. */
export function podMatcher(query: string): (name: string, pubkeys: readonly string[]) => boolean {
  const q = query.trim().toLowerCase();
  if (q === '') return () => true;
  const hex = /^(0x)?[0-9a-f]+$/.test(q) ? (q.startsWith('0x') ? q : `0x${q}`) : undefined;
  return (name, pubkeys) =>
    name.includes(q) || (hex !== undefined && pubkeys.some((k) => k.startsWith(hex)));
}

export function assignmentsRoutes(
  deps: Pick<AppDeps, 'store' | 'clock' | 'reuseDelayMs' | 'heartbeats'> & {
    readonly auth: Auth;
  },
): Router {
  const router = Router();
  const keysJson = new KeysJson();
  const counts = async () => ({
    ...(await stateCounts(deps.store, deps.clock(), deps.reuseDelayMs)),
    pods: deps.store.storedCounts().pods,
  });

  router
    .route(ROUTES.assignments)
    .get(async (_req, res) => {
      if (!deps.auth.publicAssignments) requireAdmin(deps.auth, res, ROUTES.assignments);
      const out = new ChunkWriter(res.type('application/json'));
      await out.write(`{"counts":${JSON.stringify(await counts())},"pods":{`);
      let first = true;
      for await (const [name, pod] of deps.store.pods()) {
        if (pod.keys.length === 0) continue;
        const full = out.write(
          `${first ? '' : ','}${JSON.stringify(name)}:${keysJson.of(pod.keys)}`,
        );
        if (full) await full;
        first = false;
      }
      await out.end('}}');
    })
    .all(methodNotAllowed('GET'));

  router
    .route(ROUTES.assignmentsPage)
    .get(async (req, res) => {
      if (!deps.auth.publicAssignments) {
        // A browser asks for the admin token as a password (any user name).
        res.setHeader('www-authenticate', 'Basic realm="pkm", charset="UTF-8"');
        requireAdmin(deps.auth, res, ROUTES.assignmentsPage);
        res.removeHeader('www-authenticate');
      }
      const { q: query, after, limit } = parseQuery(PageQuery, req.query);
      const nonce = randomBytes(16).toString('base64');
      res.setHeader(
        'content-security-policy',
        `default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'`,
      );
      res.setHeader('x-content-type-options', 'nosniff');
      res.setHeader('x-frame-options', 'DENY');
      res.setHeader('referrer-policy', 'no-referrer');
      // Which pod runs which validator is operational detail: no shared cache keeps it.
      res.setHeader('cache-control', 'no-store');
      const out = new ChunkWriter(res.type('text/html; charset=utf-8'));
      await out.write(pageHead({ counts: await counts(), query, nonce, now: deps.clock() }));
      const matches = podMatcher(query);
      let shown = 0;
      let lastShown = '';
      let more = false;
      for await (const [name, pod] of deps.store.pods(after === '' ? {} : { after })) {
        if (pod.keys.length === 0 || !matches(name, pod.keys)) continue;
        if (shown === limit) {
          more = true;
          break;
        }
        const full = out.write(podRow(name, pod.keys, deps.heartbeats?.get(name)));
        if (full) await full;
        shown++;
        lastShown = name;
      }
      // The cursor is the last pod shown: the next page starts after it.
      await out.end(
        pageFoot({ shown, query, nextAfter: more ? lastShown : undefined, limit, nonce }),
      );
    })
    .all(methodNotAllowed('GET'));
  return router;
}
