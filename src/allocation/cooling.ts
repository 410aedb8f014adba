// When a released key may move: elapsed time, measured on a monotonic clock (DESIGN.md "Safety
// rules"). The store keeps wall-clock times, which is all a later run can know; this run also
// counts what it saw itself, so a wall clock stepped forward (an NTP correction) releases
// nothing early, and a restart never shortens a cooling: a key released before this start
// waits at least a full reuse delay after it.

import type { Clock, Monotonic } from '../clock.js';
import type { KeyRecord } from '../store/records.js';

export interface CoolingTimes {
  readonly clock: Clock;
  readonly monotonic: Monotonic;
  readonly reuseDelayMs: number;
  /** After a start, holders first re-assert what they run (heartbeats) for this long. */
  readonly resyncWindowMs: number;
  /** A restored store: nothing moves and nothing is derived for this long after the start. */
  readonly restoreHoldMs: number;
}

export class Cooling {
  private readonly startedAt: number;
  /** Monotonic release times of the keys this run released. */
  private readonly releasedAt = new Map<string, number>();
  /** When a restore's hold ends (monotonic); releases during the hold may move it later. */
  private restoreHoldUntil: number;

  constructor(private readonly t: CoolingTimes) {
    this.startedAt = t.monotonic();
    this.restoreHoldUntil = this.startedAt + t.restoreHoldMs;
  }

  /** Notes keys released (or fenced) just now. */
  released(pubkeys: readonly string[]): void {
    const now = this.t.monotonic();
    for (const pk of pubkeys) this.releasedAt.set(pk, now);
  }

  /** Keys that left cooling: nothing to remember of them. */
  left(pubkeys: readonly string[]): void {
    for (const pk of pubkeys) this.releasedAt.delete(pk);
  }

  /** The wall-clock time a cooling key must have been released by to be done (index query). */
  wallCutoff(): number {
    return this.t.clock() - this.t.reuseDelayMs;
  }

  /** A cooling key is done when the reuse delay passed on both clocks. */
  done(r: Pick<KeyRecord, 'pubkey' | 'since'>): boolean {
    if (r.since > this.wallCutoff()) return false;
    const from = Math.max(this.startedAt, this.releasedAt.get(r.pubkey) ?? this.startedAt);
    return this.t.monotonic() - from >= this.t.reuseDelayMs;
  }

  /** Milliseconds until the reuse delay of a key released at wall time `since` has passed. */
  waitMs(since: number): number {
    const wall = since + this.t.reuseDelayMs - this.t.clock();
    const mono = this.startedAt + this.t.reuseDelayMs - this.t.monotonic();
    return Math.max(0, wall, mono);
  }

  /** Still inside the resync window (or a restore's hold). */
  resyncing(): boolean {
    return this.resyncLeftMs() > 0;
  }

  resyncLeftMs(): number {
    const end = Math.max(this.startedAt + this.t.resyncWindowMs, this.restoreHoldUntil);
    return Math.max(0, end - this.t.monotonic());
  }

  /** A restore's hold has passed (or there was none). */
  restoreHoldOver(): boolean {
    return this.t.monotonic() >= this.restoreHoldUntil;
  }

  /**
   * A pod left without a confirmed stop during a restore's hold. The restored store may not know
   * every key it ran (one it got after the backup, not re-asserted yet), and that key may run
   * for a reuse delay after the deletion: nothing is derived or moved before then, so the hold
   * lasts at least a full reuse delay from now. Outside a hold this changes nothing.
   */
  extendRestoreHold(): void {
    if (this.restoreHoldOver()) return;
    this.restoreHoldUntil = Math.max(
      this.restoreHoldUntil,
      this.t.monotonic() + this.t.reuseDelayMs,
    );
  }

  /** Monotonic now, for holds counted in memory. */
  now(): number {
    return this.t.monotonic();
  }
}
