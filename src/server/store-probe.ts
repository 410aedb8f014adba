// Readiness of a store that can be away while the server runs (PostgreSQL): a ping every few
// seconds, its last outcome kept, so /readyz (synchronous, and asked often) answers from memory
// and a database that stops turns the server not ready within one interval.
import { messageOf, PkmError } from '../errors.js';
import type { Logger } from '../log.js';

export class StoreProbe {
  private failure: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly ping: () => Promise<void>,
    private readonly log: Logger,
    private readonly intervalMs = 2_000,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    // The probe alone never keeps the process up.
    this.timer.unref();
  }

  /** Why the store cannot serve, as of the last ping; undefined: it answered. */
  notReady(): string | undefined {
    return this.failure;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    // A ping that hangs until its connect timeout is not stacked on by the next one.
    if (this.running) return;
    this.running = true;
    try {
      await this.ping();
      if (this.failure !== undefined) this.log.info('the store answers again: ready');
      this.failure = undefined;
    } catch (err) {
      // pg's messages name hosts and ports, never the password (it is not in the URL).
      if (this.failure === undefined)
        this.log.warn({ err: messageOf(err) }, 'the store cannot serve: not ready');
      this.failure =
        err instanceof PkmError && err.code === 'CLOCK_SKEW'
          ? err.message
          : 'the store cannot be reached';
    } finally {
      this.running = false;
    }
  }
}
