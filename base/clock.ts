/**
 * Time: waiting that can be cut short, and durations as results report them.
 *
 * @module
 */

/**
 * Resolves after `ms` milliseconds, or at once when `signal` aborts (it
 * never rejects: the caller checks the signal).
 *
 * @example
 * ```ts
 * import { delay } from "./clock.ts";
 * await delay(10);
 * ```
 */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

/**
 * Seconds since `started` (a `performance.now()` reading), to the
 * millisecond, as transfer results report them.
 */
export function secondsSince(started: number): number {
  return Math.round(performance.now() - started) / 1000;
}
