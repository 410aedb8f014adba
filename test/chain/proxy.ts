// A TCP proxy in front of the RPC that a test can cut and restore ("the RPC is down" without
// losing the chain behind it), or slow down (every request reaches the node late, as over a
// slow link or a loaded provider).
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface RpcProxy {
  readonly url: string;
  /** Drops open connections and refuses new ones until up(). */
  down(): void;
  up(): void;
  /**
   * From now on each chunk a client sends reaches the node `ms` later, in order. One JSON-RPC
   * request (or one ethers batch) is one HTTP request, so every call takes `ms` longer.
   */
  delay(ms: number): void;
  /**
   * From now on a request calling `method` (e.g. eth_sendRawTransaction) is dropped with its
   * connection before it reaches the node, as when the link fails right then; undefined lets
   * every call through again.
   */
  drop(method: string | undefined): void;
  /** The requests dropped so far, as the client sent them. */
  readonly dropped: string[];
  close(): Promise<void>;
}

export async function startProxy(targetUrl: string): Promise<RpcProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let isUp = true;
  let delayMs = 0;
  let dropMethod: string | undefined;
  const dropped: string[] = [];
  const server: Server = createServer((client) => {
    if (!isUp) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    // Chunks keep their order: a queue per connection, its head sent `delayMs` after it came.
    const queue: Array<{ due: number; chunk: Buffer }> = [];
    let timer: NodeJS.Timeout | undefined;
    const pump = () => {
      const head = queue[0];
      if (timer || !head) return;
      timer = setTimeout(() => {
        if (timer) timers.delete(timer);
        timer = undefined;
        queue.shift();
        if (!upstream.destroyed) upstream.write(head.chunk);
        pump();
      }, head.due - Date.now());
      timers.add(timer);
    };
    client.on('data', (chunk: Buffer) => {
      // ethers writes each request (or batch) as compact JSON: the method name appears as is.
      if (dropMethod && chunk.includes(`"method":"${dropMethod}"`)) {
        dropped.push(chunk.toString());
        drop();
        return;
      }
      if (delayMs === 0 && queue.length === 0) {
        upstream.write(chunk);
        return;
      }
      queue.push({ due: Date.now() + delayMs, chunk });
      pump();
    });
    upstream.pipe(client);
    const drop = () => {
      if (timer) {
        clearTimeout(timer);
        timers.delete(timer);
        timer = undefined;
      }
      queue.length = 0;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    down() {
      isUp = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    up() {
      isUp = true;
    },
    delay(ms: number) {
      delayMs = ms;
    },
    drop(method: string | undefined) {
      dropMethod = method;
    },
    dropped,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
