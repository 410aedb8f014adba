// Shutdown as a stack: each part that has started pushes how to stop it. A start that fails half
// way stops exactly what it started, last first, and a clean stop runs the very same steps, so
// there is one teardown, not one per way a start can fail.

type Step = () => Promise<void> | void;

export class Teardown {
  private readonly steps: Step[] = [];
  /** The run under way: a second stop (SIGTERM, then SIGINT) waits for it, never overtakes it. */
  private running: Promise<void> | undefined;

  /** How to stop a part that has just started. */
  push(step: Step): void {
    this.steps.push(step);
  }

  /**
   * Runs every step, the last pushed first. A step that fails does not keep the rest from
   * running (the store still closes when a watcher fails to stop); the first failure is thrown
   * once all have run. Each step runs once: a call while a run is under way waits for that run
   * (it must not pop the steps still waiting, such as closing the store under a request the
   * server is draining), and a call after it is done does nothing.
   */
  run(): Promise<void> {
    this.running ??= this.runSteps();
    return this.running;
  }

  private async runSteps(): Promise<void> {
    const failures: unknown[] = [];
    for (let step = this.steps.pop(); step !== undefined; step = this.steps.pop()) {
      try {
        await step();
      } catch (err) {
        failures.push(err);
      }
    }
    if (failures.length > 0) throw failures[0];
  }

  /** Runs `start`; if it throws, stops what had started, then rethrows. */
  async guard<T>(start: () => Promise<T>): Promise<T> {
    try {
      return await start();
    } catch (err) {
      // The start's own error is the one to report; a part that also fails to stop adds nothing.
      await this.run().catch(() => undefined);
      throw err;
    }
  }
}
