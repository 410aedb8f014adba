// The holdings witness: an append-only JSON-lines ledger that every fake (in the test process
// or a child process) writes to, one line per change of what it holds, stamped with the
// machine's monotonic clock. process.hrtime.bigint() reads CLOCK_MONOTONIC on Linux, one clock
// for every process of the machine, so stamps from different processes compare. Each line is
// one write(2) to a file opened O_APPEND; Linux serialises writes to a regular file and puts
// each at its end, so lines from different processes never interleave.
//
// A fake records a hold before the key can sign, and a release after it can no longer sign
// (and before it answers), so each recorded interval covers the real one. witness-check.ts
// reads the ledger back and finds the keys held in two places at once.
import { appendFileSync, readFileSync } from 'node:fs';
import { z } from 'zod';

const Role = z.enum(['vc', 'signer']);
const RemoteKey = z.object({ pubkey: z.string(), url: z.string() });

/** One change, as a fake reports it (the ledger adds `t`). */
export const WitnessEvent = z.discriminatedUnion('kind', [
  /** A peer's local keystore (a VC's local key, a signer's key) appears or goes. */
  z.object({ kind: z.enum(['hold', 'release']), peer: z.string(), role: Role, pubkey: z.string() }),
  /** A VC registers or drops a remote key that signs through the signer at `url`. */
  z.object({
    kind: z.enum(['remote-hold', 'remote-release']),
    peer: z.string(),
    pubkey: z.string(),
    url: z.string(),
  }),
  /** On start: all a peer holds (from its data dir), replacing what the ledger had for it. */
  z.object({
    kind: z.literal('snapshot'),
    peer: z.string(),
    role: Role,
    local: z.array(z.string()),
    remote: z.array(RemoteKey),
  }),
  /** A peer serves at `url` (a signer's URL is what remote keys point at). */
  z.object({ kind: z.literal('listening'), peer: z.string(), role: Role, url: z.string() }),
  /** A signature by `pubkey` (an attestation for `target`); `via`: through that signer. */
  z.object({
    kind: z.literal('signed'),
    peer: z.string(),
    pubkey: z.string(),
    target: z.number().int(),
    root: z.string(),
    via: z.string().optional(),
  }),
  /** A test declares a (dead) peer's storage destroyed: it holds nothing any more. */
  z.object({ kind: z.literal('wiped'), peer: z.string() }),
]);
export type WitnessEvent = z.infer<typeof WitnessEvent>;
export type Stamped = WitnessEvent & { readonly t: bigint; readonly seq: number };

/** URLs compare by origin and path, without a trailing slash. */
export function normaliseUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return url;
  }
}

export class Witness {
  constructor(readonly path: string) {}

  record(event: WitnessEvent): void {
    const t = process.hrtime.bigint().toString();
    appendFileSync(this.path, `${JSON.stringify({ ...event, t })}\n`);
  }

  /** A test's declaration that a dead peer's storage is gone for good. */
  wiped(peer: string): void {
    this.record({ kind: 'wiped', peer });
  }

  /** Every event so far, in time order (ties in ledger order). */
  read(): Stamped[] {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return [];
    }
    const Line = z.object({ t: z.string().regex(/^\d+$/) }).passthrough();
    const events = text
      .split('\n')
      .filter((l) => l !== '')
      .map((line, seq) => {
        const json: unknown = JSON.parse(line);
        const { t } = Line.parse(json);
        return { ...WitnessEvent.parse(json), t: BigInt(t), seq };
      });
    return events.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.seq - b.seq));
  }
}
