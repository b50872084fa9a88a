/**
 * Numbers as the page shows them: sizes and rates in binary units (the
 * CLI's own formatting), ETAs, dates, short digests, and a rate meter over
 * the last few seconds.
 *
 * @module
 */

import { formatBytes } from "../../base/bytes.ts";
import { formatDuration } from "../../base/clock.ts";

export { formatBytes, formatDuration };

/** How many hex digits of a digest the page shows. */
export const SHORT_DIGEST = 12;

/** The first {@linkcode SHORT_DIGEST} hex digits of `sha256`. */
export function shortDigest(sha256: string): string {
  return sha256.slice(0, SHORT_DIGEST);
}

/** `2024-05-01 14:03`, in the reader's time zone. */
export function formatDate(ms: number): string {
  const d = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${
    two(d.getHours())
  }:${two(d.getMinutes())}`;
}

/** `12.5 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/** How far back a {@linkcode RateMeter} looks, in ms. */
const WINDOW_MS = 3000;

/** Bytes per second over the last few seconds of readings. */
export class RateMeter {
  #samples: { at: number; bytes: number }[] = [];

  /** Records that `bytes` were done at `at` (`performance.now()`). */
  add(bytes: number, at: number = performance.now()): void {
    const samples = this.#samples;
    const last = samples.at(-1);
    if (last && bytes < last.bytes) samples.length = 0;
    samples.push({ at, bytes });
    while (samples.length > 2 && at - samples[0]!.at > WINDOW_MS) {
      samples.shift();
    }
  }

  /** Forgets every reading (after a pause). */
  reset(): void {
    this.#samples.length = 0;
  }

  /** The rate, 0 until two readings are far enough apart. */
  rate(): number {
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (!first || !last || last.at - first.at < 200) return 0;
    return (last.bytes - first.bytes) / ((last.at - first.at) / 1000);
  }
}

/** Seconds until `remaining` bytes are done at `rate`, `Infinity` when unknown. */
export function etaSeconds(remaining: number, rate: number): number {
  return rate > 0 ? remaining / rate : Infinity;
}
