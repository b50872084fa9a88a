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
  t: 1024 ** 4,
};

/**
 * Parses a byte count such as `500k`, `20M` or `1g` (binary units); a
 * malformed or zero count is a `SyntaxError`.
 */
export function parseBytes(text: string): number {
  const match = /^(\d+(?:\.\d+)?)([kmgt]?)(?:i?b?)?$/i.exec(text.trim());
  const bytes = match
    ? Number(match[1]) * UNITS[match[2]!.toLowerCase()]!
    : NaN;
  if (!(bytes >= 1) || !Number.isSafeInteger(Math.floor(bytes))) {
    throw new SyntaxError(
      `Cannot parse "${text}": use a number of bytes like 500k, 20M or 1G`,
    );
  }
  return Math.floor(bytes);
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
