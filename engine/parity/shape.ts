/**
 * How parity is asked for on the command line: `K+M`, `K` data chunks and
 * `M` parity shards per group.
 *
 * @module
 */

import { MAX_SHARDS } from "./reed_solomon.ts";

/** Groups of `k` data chunks with `m` parity shards. */
export interface GroupShape {
  /** Data chunks per group. */
  readonly k: number;
  /** Parity shards per group. */
  readonly m: number;
}

/**
 * Reads `K+M` (e.g. `16+2`); a `SyntaxError` says what is wrong.
 *
 * @example
 * ```ts
 * import { parseShape } from "./shape.ts";
 * console.log(parseShape("8+2")); // { k: 8, m: 2 }
 * ```
 */
export function parseShape(text: string): GroupShape {
  const match = /^(\d{1,3})\+(\d{1,3})$/.exec(text.trim());
  const k = Number(match?.[1]);
  const m = Number(match?.[2]);
  if (!match || k < 1 || m < 1 || k + m > MAX_SHARDS) {
    throw new SyntaxError(
      `Cannot read "${text}" as K+M: K data chunks and M parity shards, each at least 1, together at most ${MAX_SHARDS} (e.g. 16+2)`,
    );
  }
  return { k, m };
}
