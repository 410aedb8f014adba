// The server's composition root: open the store, build the domain and the app, listen, and
// shut down cleanly on SIGTERM (stop taking requests, finish those in flight, close the store).
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Allocator } from '../allocation/allocator.js';
import { type Clock, systemClock } from '../allocation/clock.js';
import { stateCounts } from '../allocation/counts.js';
import type { ServerConfig } from '../config.js';
import { PkmError } from '../errors.js';
import { type KeySource, randomKeySource } from '../keys/source.js';
import type { Logger } from '../log.js';
import { Store } from '../store/store.js';
import { createApp } from './app.js';
import { createMetrics } from './metrics.js';

export interface ServiceDeps {
  readonly store: Store;
  readonly config: Pick<ServerConfig, 'reuseDelayMs' | 'maxKeysPerPod' | 'maxTotalKeys'>;
  readonly log: Logger;
  readonly clock?: Clock;
  readonly keySource?: KeySource;
  readonly isDraining?: () => boolean;
}

/** Wires store, allocator, metrics and app together; tests call this over a temp store. */
export function composeApp(deps: ServiceDeps) {
  const clock = deps.clock ?? systemClock;
  const { reuseDelayMs } = deps.config;
  const metrics = createMetrics({
    counts: () => stateCounts(deps.store, clock(), reuseDelayMs),
    pods: () => deps.store.storedCounts().pods,
  });
  const allocator = new Allocator({
    store: deps.store,
    clock,
    keySource: deps.keySource ?? randomKeySource,
    config: deps.config,
    onAllocated: (o) => metrics.onAllocated(o),
    onReleased: (pod, n) => metrics.onReleased(pod, n),
  });
  const app = createApp({
    store: deps.store,
    allocator,
    clock,
    log: deps.log,
    metrics,
    reuseDelayMs,
    ...(deps.isDraining ? { isDraining: deps.isDraining } : {}),
  });
  return { app, allocator, metrics };
}

export interface RunningServer {
  readonly url: string;
  /** Stops accepting, waits for requests in flight (up to graceMs), then closes the store. */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(config: ServerConfig, log: Logger): Promise<RunningServer> {
  const store = await Store.open(config.dataDir);
  let draining = false;
  const { app } = composeApp({ store, config, log, isDraining: () => draining });
  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(config.listen.port, config.listen.host, (err?: Error) =>
        err ? reject(err) : resolve(s),
      );
    });
  } catch (err) {
    await store.close();
    const reason = err instanceof Error ? err.message : String(err);
    throw new PkmError(
      'INVALID_CONFIG',
      `cannot listen on --listen ${config.listen.host}:${config.listen.port}: ${reason}`,
    );
  }
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  const url = `http://${host}:${port}`;
  log.info({ url, dataDir: config.dataDir, keys: store.storedCounts() }, 'listening');
  log.flush();
  return {
    url,
    async close(graceMs = 10_000) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const force = setTimeout(() => server.closeAllConnections(), graceMs);
      await closed;
      clearTimeout(force);
      await store.close();
      log.info('stopped');
      log.flush();
    },
  };
}
