/** Milliseconds since the epoch (wall clock). Injected, so tests move time instead of sleeping. */
export type Clock = () => number;

export const systemClock: Clock = () => Date.now();

/**
 * Milliseconds on a clock that never jumps: only differences mean anything. Cooling, fences and
 * resync windows count elapsed time on it, so an NTP step of the wall clock releases nothing early.
 */
export type Monotonic = () => number;

export const systemMonotonic: Monotonic = () => performance.now();
