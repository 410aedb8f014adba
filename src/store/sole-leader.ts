// The leadership of a store with one server (LevelDB holds its lock for one process): that
// server is always the leader, from its start to its stop.
import type { Leadership } from './contract.js';

export const soleLeadership: Leadership = {
  isLeader: true,
  watch(listener) {
    listener(true);
    return () => undefined;
  },
  start() {},
  async stop() {},
};
