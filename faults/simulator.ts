/**
 * The seed's error simulation on the sending side: chunks are shuffled
 * (out-of-order delivery, within windows of {@linkcode REORDER_WINDOW} chunks
 * as a network reorders), skipped (packet loss) or bit-flipped (corruption)
 * with a given probability, reproducibly with a seed.
 *
 * @module
 */

import type { Logger } from "../base/log.ts";
import { Rng } from "./rng.ts";
import {
  type ChunkFate,
  type ChunkFaults,
  OVERDUE_DISTANCE,
} from "../engine/transfer.ts";

export type { ChunkFate };

/**
 * Chunks shuffled together: each window of this many consecutive chunks goes
 * out in a random order, so a chunk arrives at most this many places from
 * its own. A network reorders locally; a file of at most this many chunks
 * is shuffled whole, as the seed shuffled every file. It is the engine's
 * {@linkcode OVERDUE_DISTANCE}, so reordering alone never looks like loss.
 */
export const REORDER_WINDOW: number = OVERDUE_DISTANCE;

/** Options for {@linkcode ErrorSimulator}. */
export interface ErrorSimulatorOptions {
  /** Probability that a chunk is lost or corrupted, split evenly. @default 0.1 */
  errorRate?: number;
  /** Seed for reproducible runs. */
  seed?: number;
  /** Where "Simulating ..." lines go. */
  log?: Logger;
}

/** Decides the fate of chunks as they are sent. */
export class ErrorSimulator implements ChunkFaults {
  /** Probability that a chunk is lost or corrupted. */
  readonly errorRate: number;
  #rng: Rng;
  #log: Logger | undefined;

  /** Creates a simulator. */
  constructor(options: ErrorSimulatorOptions = {}) {
    const rate = options.errorRate ?? 0.1;
    if (!(rate >= 0 && rate <= 1)) {
      throw new RangeError(
        `Cannot simulate errors: rate ${rate} is not in 0..1`,
      );
    }
    this.errorRate = rate;
    this.#rng = new Rng(options.seed);
    this.#log = options.log;
  }

  /** Shuffles the order chunks are sent in, within windows of {@linkcode REORDER_WINDOW}. */
  order(seqs: readonly number[]): number[] {
    const order: number[] = [];
    for (let start = 0; start < seqs.length; start += REORDER_WINDOW) {
      order.push(
        ...this.#rng.shuffle(seqs.slice(start, start + REORDER_WINDOW)),
      );
    }
    return order;
  }

  /** Draws the fate of chunk `seq` and logs any damage. */
  fate(seq: number, what = `chunk ${seq}`): ChunkFate {
    const draw = this.#rng.next();
    if (draw >= this.errorRate) return "deliver";
    if (draw < this.errorRate / 2) {
      this.#log?.info(`Simulating packet loss for ${what}`);
      return "lose";
    }
    this.#log?.info(`Simulating data corruption for ${what}`);
    return "corrupt";
  }

  /** Flips one random bit of `bytes` in place. */
  corrupt(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    bytes[this.#rng.int(bytes.length)]! ^= 1 << this.#rng.int(8);
  }
}
