/**
 * Forward error correction on the wire: what sender and receiver share.
 * The sender follows each group of `k` chunks with `m` parity frames; the
 * receiver rebuilds up to `m` lost or damaged chunks of a group at once,
 * and asks (early nack, repair rounds) only for what parity could not
 * rebuild. Parity is the store's Reed-Solomon code (`parity/`).
 *
 * `auto` starts with no parity and follows the receiver's `loss` reports
 * (one per group of {@linkcode AUTO_GROUP} chunks): each group gets
 * `m = ceil(2 * k * p) + 1` parity frames, `p` the share of chunks lost over the
 * last {@linkcode AUTO_WINDOW} reports (at most {@linkcode MAX_AUTO_PARITY}),
 * and none once that many reports in a row saw no loss: on a clean link
 * parity costs nothing after the first few groups. The last two groups of
 * a file get one frame more: a chunk lost there could only be asked for in
 * a repair round, since nothing follows it.
 *
 * @module
 */

import type { GroupShape } from "./parity/shape.ts";

/** Data chunks per group in `auto` mode. */
export const AUTO_GROUP = 16;
/** Most parity frames per group in `auto` mode. */
export const MAX_AUTO_PARITY = 6;
/**
 * Most parity frames a group is counted on, for when a missing chunk is
 * late: a receiver asks for it once the group's data and this many frames
 * more have passed.
 */
export const MAX_PARITY_FRAMES = 8;

/** Loss reports (groups) the `auto` loss rate is taken over. */
export const AUTO_WINDOW = 4;

/** What a transfer asks for: no parity, a fixed `K+M`, or `auto`. */
export type FecMode = "off" | "auto" | GroupShape;

/** The `fec` field of a `get`, or of a command line: `auto`, `K+M` or `off`. */
export function fecText(mode: FecMode): string {
  return typeof mode === "string" ? mode : `${mode.k}+${mode.m}`;
}

/** Group `group`'s parity shard `j` as a frame sequence number. */
export function paritySeq(group: number, j: number): number {
  return group * 256 + j;
}

/** The group and shard index a parity frame's sequence number names. */
export function parityOf(seq: number): { group: number; j: number } {
  return { group: Math.floor(seq / 256), j: seq % 256 };
}

/** The `auto` parity level: follows the loss reports as the module says. */
export class AutoParity {
  #reports: { lost: number; received: number }[] = [];
  #m = 0;

  /** Parity frames per group now. */
  get m(): number {
    return this.#m;
  }

  /** Takes one loss report and resizes the parity. */
  report(lost: number, received: number): void {
    this.#reports.push({ lost, received });
    if (this.#reports.length > AUTO_WINDOW) this.#reports.shift();
    if (lost === 0) {
      this.#m = Math.max(0, this.#m - 1);
      return;
    }
    const totals = this.#reports.reduce(
      (sum, r) => ({
        lost: sum.lost + r.lost,
        received: sum.received + r.received,
      }),
      { lost: 0, received: 0 },
    );
    const p = totals.lost / Math.max(1, totals.received);
    this.#m = Math.min(MAX_AUTO_PARITY, Math.ceil(2 * AUTO_GROUP * p) + 1);
  }
}
