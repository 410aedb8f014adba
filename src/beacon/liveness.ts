// The liveness gate (--beacon-url): before a cooled key moves to another pod, ask the beacon
// node whether that validator was live in the current or the previous epoch (standard beacon
// API: GET /eth/v1/beacon/states/head/validators for its index, then
// POST /eth/v1/validator/liveness/{epoch}). A live key is held back: its old holder may still
// be running it, and a second copy would be slashed.
import { z } from 'zod';
import { PkmError } from '../errors.js';

const SECONDS_PER_SLOT = 12;
const SLOTS_PER_EPOCH = 32;

const Validators = z.object({
  data: z.array(
    z
      .object({ index: z.string(), validator: z.object({ pubkey: z.string() }).passthrough() })
      .passthrough(),
  ),
});
const Liveness = z.object({ data: z.array(z.object({ index: z.string(), is_live: z.boolean() })) });

export interface LivenessGate {
  /** The pubkeys among `pubkeys` whose validators were live in this or the last epoch. */
  live(pubkeys: readonly string[], nowMs: number): Promise<string[]>;
}

export class BeaconLivenessGate implements LivenessGate {
  private readonly indexOf = new Map<string, string>();

  constructor(
    private readonly beaconUrl: string,
    private readonly genesisTime: number,
    private readonly timeoutMs = 5_000,
  ) {}

  async live(pubkeys: readonly string[], nowMs: number): Promise<string[]> {
    if (pubkeys.length === 0) return [];
    const indices = await this.indices(pubkeys);
    if (indices.size === 0) return []; // none is on chain yet: none can be live
    const slot = Math.max(0, Math.floor((nowMs / 1000 - this.genesisTime) / SECONDS_PER_SLOT));
    const epoch = Math.floor(slot / SLOTS_PER_EPOCH);
    const liveIndices = new Set<string>();
    for (const e of new Set([epoch, Math.max(0, epoch - 1)])) {
      const answer = Liveness.safeParse(
        await this.call('POST', `/eth/v1/validator/liveness/${e}`, [...indices.values()]),
      );
      if (!answer.success)
        throw new PkmError(
          'BEACON_UNAVAILABLE',
          'the beacon node answered liveness in an unknown shape',
        );
      for (const d of answer.data.data) if (d.is_live) liveIndices.add(d.index);
    }
    return [...indices].filter(([, index]) => liveIndices.has(index)).map(([pubkey]) => pubkey);
  }

  private async indices(pubkeys: readonly string[]): Promise<Map<string, string>> {
    const unknown = pubkeys.filter((pk) => !this.indexOf.has(pk));
    if (unknown.length > 0) {
      const ids = unknown.map((pk) => `id=${pk}`).join('&');
      const answer = Validators.safeParse(
        await this.call('GET', `/eth/v1/beacon/states/head/validators?${ids}`),
      );
      if (!answer.success)
        throw new PkmError(
          'BEACON_UNAVAILABLE',
          'the beacon node answered validators in an unknown shape',
        );
      for (const v of answer.data.data) this.indexOf.set(v.validator.pubkey.toLowerCase(), v.index);
    }
    const out = new Map<string, string>();
    for (const pk of pubkeys) {
      const index = this.indexOf.get(pk);
      if (index !== undefined) out.set(pk, index);
    }
    return out;
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.beaconUrl), {
        method,
        headers: {
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      throw new PkmError(
        'BEACON_UNAVAILABLE',
        `the beacon node at ${this.beaconUrl} does not answer`,
        { cause, retryAfter: 15 },
      );
    }
    if (res.status === 404) return { data: [] }; // no such validator (yet)
    if (!res.ok)
      throw new PkmError(
        'BEACON_UNAVAILABLE',
        `the beacon node answered ${res.status} for ${path}`,
        { retryAfter: 15 },
      );
    return res.json();
  }
}
