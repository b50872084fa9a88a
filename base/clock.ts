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

/** `1:05`, `12:00:00`: a duration in seconds for an ETA. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.max(0, Math.round(seconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor(s / 60) % 60;
  const rest = String(s % 60).padStart(2, "0");
  return hours > 0
    ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}`
    : `${minutes}:${rest}`;
}
