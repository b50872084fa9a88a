/**
 * `--limit-rate`: a token bucket that paces bytes to a steady rate, like
 * rsync's `--bwlimit` and curl's `--limit-rate`.
 *
 * @module
 */

const UNITS: Record<string, number> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

/**
 * Parses a rate such as `500k`, `20M` or `1g` (bytes per second, binary
 * units); a malformed or zero rate is a `SyntaxError`.
 */
export function parseRate(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([kmg]?)(?:i?b?)?$/i.exec(text.trim());
  const rate = match ? Number(match[1]) * UNITS[match[2]!.toLowerCase()]! : NaN;
  if (!(rate >= 1)) {
    throw new SyntaxError(
      `Cannot parse rate "${text}": use bytes per second like 500k, 20M or 1G`,
    );
  }
  return Math.floor(rate);
}

/** Paces callers to `bytesPerSecond`, allowing bursts of a quarter second. */
export class RateLimiter {
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
