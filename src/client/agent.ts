// `pkm agent`, a sidecar: every --interval it tells the server which keys this pod runs (the
// keystores in --out). The server answers with its boot token; a new token means the server
// restarted, maybe from an older copy of its data, so the agent re-asserts its keys at once,
// within the server's resync window, before any of them could go to another pod. Keys the
// server refuses (it does not record them as this pod's) are sent again at once with a proof
// of possession each (possession.ts), which is what lets the server record them at all.
import { setTimeout as sleep } from 'node:timers/promises';
import { HeartbeatAnswer } from '../api/heartbeat.js';
import { podPath } from '../api/names.js';
import { messageOf, PkmError } from '../errors.js';
import type { Logger } from '../log.js';
import { callServer } from './api.js';
import { connection, existingKeys } from './client.js';
import type { ClientConfig } from './config.js';
import { LAYOUT_SPECS } from './layouts.js';
import { signPossession } from './possession.js';

/** The client's connection and folder flags, and the time between heartbeats. */
export interface AgentOptions
  extends Pick<
    ClientConfig,
    'server' | 'tokenFile' | 'caFile' | 'pod' | 'namespace' | 'out' | 'layout'
  > {
  readonly intervalMs: number;
  /**
   * The keys the pod runs, when not the keystores in --out: with --keymanager-url, what its
   * validator client (or remote signer) holds. Then no keystore is at hand to prove
   * possession with, and refused claims are only logged.
   */
  readonly running?: () => Promise<string[]>;
}

export class Agent {
  private bootToken: string | undefined;
  private stopped = false;
  private readonly abort = new AbortController();

  constructor(
    private readonly opts: AgentOptions,
    private readonly log: Logger,
  ) {}

  /**
   * One heartbeat; re-asserts at once when the server's boot token changed, and proves
   * possession of the keys the server refused.
   */
  async beat(): Promise<HeartbeatAnswer> {
    let answer = await this.send();
    if (this.bootToken !== undefined && answer.bootToken !== this.bootToken) {
      this.log.warn(
        { pod: this.opts.pod },
        'the server restarted: re-asserting the keys this pod runs',
      );
      this.bootToken = answer.bootToken;
      answer = await this.send();
    }
    this.bootToken = answer.bootToken;
    if (answer.refused.length === 0) return answer;
    if (this.opts.running) {
      this.log.error(
        { refused: answer.refused },
        'the server does not record these keys as this pod’s, and the agent has no keystore of them to prove possession with: nothing changed (a free or cooling one is held from every pod while this pod reports it); an operator must act',
      );
      return answer;
    }
    const { proofs, failed } = await signPossession(
      {
        out: this.opts.out,
        spec: LAYOUT_SPECS[this.opts.layout],
        bootToken: answer.bootToken,
        identity: `${this.opts.namespace}/${this.opts.pod}`,
      },
      answer.refused,
    );
    for (const f of failed)
      this.log.error(
        { pubkey: f.pubkey, reason: f.reason },
        'cannot prove possession of this key: its keystore or password in --out cannot be opened',
      );
    this.log.info(
      { pubkeys: Object.keys(proofs) },
      'the server does not record these keys as this pod’s: proving possession',
    );
    answer = await this.send(proofs);
    if (answer.refused.length > 0)
      this.log.error(
        { refused: answer.refused },
        'the server refused this pod’s proofs for these keys (it restarted meanwhile, or they are not this pod’s)',
      );
    return answer;
  }

  /** Beats every --interval until stop(); a failed beat is logged and tried at the next one. */
  async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.beat();
      } catch (err) {
        this.log.warn({ err: messageOf(err) }, 'heartbeat failed');
      }
      // stop() aborts the wait: that rejection is the signal to end, not an error.
      await sleep(this.opts.intervalMs, undefined, { signal: this.abort.signal }).catch(
        () => undefined,
      );
    }
  }

  stop(): void {
    this.stopped = true;
    this.abort.abort();
  }

  private async send(proofs?: Record<string, string>): Promise<HeartbeatAnswer> {
    const pubkeys = this.opts.running
      ? await this.opts.running()
      : await existingKeys(this.opts.out, LAYOUT_SPECS[this.opts.layout]);
    const path = podPath(this.opts.namespace, this.opts.pod, 'heartbeat');
    // Only proofs for keys still in --out: the server refuses a proof for a key not reported.
    const proven = Object.fromEntries(
      Object.entries(proofs ?? {}).filter(([pk]) => pubkeys.includes(pk)),
    );
    const body = Object.keys(proven).length > 0 ? { pubkeys, proofs: proven } : { pubkeys };
    const parsed = HeartbeatAnswer.safeParse(
      await callServer(connection(this.opts), 'POST', path, body),
    );
    if (!parsed.success) throw new PkmError('SERVER_FAILED', 'the heartbeat answer is not one');
    const answer = parsed.data;
    if (answer.reclaimed.length > 0)
      this.log.info({ reclaimed: answer.reclaimed }, 'the server gave these keys back to this pod');
    if (answer.reported.length > 0)
      this.log.error(
        { reported: answer.reported },
        'the server had no record of these keys (an older copy of its store?): recorded as this pod’s, never handed out; an operator must act',
      );
    if (answer.conflicts.length > 0) {
      this.log.error(
        { conflicts: answer.conflicts },
        'CONFLICT: another pod runs these keys too; stop one of them',
      );
    }
    return answer;
  }
}
