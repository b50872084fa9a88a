/**
 * `--limit-rate`: a token bucket that paces bytes to a steady rate, like
 * rsync's `--bwlimit` and curl's `--limit-rate`.
 *
 * @module
 */

/**
 * Paces callers to `bytesPerSecond`, allowing bursts of a quarter second.
 *
 * @example
 * ```ts
 * import { RateLimiter } from "./rate_limit.ts";
 * const limiter = new RateLimiter(1024 * 1024);
 * await limiter.consume(64 * 1024); // at most 1 MiB/s through here
 * ```
 */
export class RateLimiter {
  /** The rate kept to. */
  readonly bytesPerSecond: number;
  #tokens: number;
  #last = performance.now();

  /** A limiter for `bytesPerSecond`. */
  constructor(bytesPerSecond: number) {
    this.bytesPerSecond = bytesPerSecond;
    this.#tokens = 0;
  }

  /** Resolves once `bytes` may pass. */
  async consume(bytes: number): Promise<void> {
    const now = performance.now();
    const burst = this.bytesPerSecond / 4;
    this.#tokens = Math.min(
      burst,
      this.#tokens + (now - this.#last) * this.bytesPerSecond / 1000,
    );
    this.#last = now;
    this.#tokens -= bytes;
    if (this.#tokens < 0) {
      const waitMs = -this.#tokens / this.bytesPerSecond * 1000;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}
