import { describe, expect, it } from 'vitest';
import { Teardown } from '../../src/server/teardown.js';

describe('Teardown', () => {
  it('stops the parts last started first, each once', async () => {
    const stopped: string[] = [];
    const teardown = new Teardown();
    for (const part of ['store', 'depositor', 'server'])
      teardown.push(() => void stopped.push(part));
    await teardown.run();
    await teardown.run();
    expect(stopped).toEqual(['server', 'depositor', 'store']);
  });

  it('runs every step when one fails, then throws the first failure', async () => {
    const stopped: string[] = [];
    const teardown = new Teardown();
    teardown.push(() => void stopped.push('store'));
    teardown.push(() => {
      throw new Error('watcher would not stop');
    });
    teardown.push(async () => {
      stopped.push('server');
    });
    await expect(teardown.run()).rejects.toThrow('watcher would not stop');
    expect(stopped).toEqual(['server', 'store']);
  });

  it('a start that fails stops what it had started and reports its own error', async () => {
    const stopped: string[] = [];
    const teardown = new Teardown();
    const start = teardown.guard(async () => {
      teardown.push(() => void stopped.push('store'));
      teardown.push(() => {
        throw new Error('also broken');
      });
      throw new Error('cannot listen');
    });
    await expect(start).rejects.toThrow('cannot listen');
    expect(stopped).toEqual(['store']);
  });

  it('a start that succeeds keeps its parts running', async () => {
    const stopped: string[] = [];
    const teardown = new Teardown();
    expect(await teardown.guard(async () => teardown.push(() => void stopped.push('store')))).toBe(
      undefined,
    );
    expect(stopped).toEqual([]);
    await teardown.run();
    expect(stopped).toEqual(['store']);
  });

  it('a second run while one is under way waits for it and runs nothing of its own', async () => {
    const stopped: string[] = [];
    const teardown = new Teardown();
    let drained: () => void = () => undefined;
    teardown.push(() => void stopped.push('store'));
    teardown.push(() => new Promise<void>((resolve) => (drained = resolve)));
    const first = teardown.run();
    const second = teardown.run();
    await new Promise((resolve) => setTimeout(resolve, 10));
    // The server still drains: the store must not close under it.
    expect(stopped).toEqual([]);
    drained();
    await Promise.all([first, second]);
    expect(stopped).toEqual(['store']);
  });
});
