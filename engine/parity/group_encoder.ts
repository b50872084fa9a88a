/**
 * Parity computed one data shard at a time: each shard of a group is
 * multiplied into the group's `m` parity accumulators as it passes, so a
 * stream of chunks gets its parity without holding the group's `k` chunks
 * in memory (only `m` shard buffers). The result equals
 * {@linkcode ReedSolomon.encode} of the whole group, with missing trailing
 * shards of a short last group read as zeros.
 *
 * @module
 */

import { ShardMultiplier } from "./_kernel.ts";
import { encodingMatrix } from "./_matrix.ts";
import { MAX_SHARDS } from "./reed_solomon.ts";

/** Accumulates the parity of one group at a time. */
export class GroupEncoder {
  /** Data shards per group. */
  readonly dataShards: number;
  /** Parity shards per group. */
  readonly parityShards: number;
  /** Bytes per shard. */
  readonly shardSize: number;
  #columns: (ShardMultiplier | undefined)[];
  #matrix: Uint8Array;
  #parity: Uint8Array[];
  #added = 0;

  /** An encoder of `dataShards` + `parityShards` groups of `shardSize`-byte shards. */
  constructor(dataShards: number, parityShards: number, shardSize: number) {
    if (
      !Number.isSafeInteger(dataShards) || dataShards < 1 ||
      !Number.isSafeInteger(parityShards) || parityShards < 1 ||
      dataShards + parityShards > MAX_SHARDS
    ) {
      throw new RangeError(
        `Cannot encode groups of ${dataShards}+${parityShards}: need k >= 1, m >= 1, k + m <= ${MAX_SHARDS}`,
      );
    }
    this.dataShards = dataShards;
    this.parityShards = parityShards;
    this.shardSize = shardSize;
    this.#matrix = encodingMatrix(dataShards, parityShards);
    this.#columns = new Array(dataShards);
    this.#parity = Array.from(
      { length: parityShards },
      () => new Uint8Array(shardSize),
    );
  }

  /**
   * Adds data shard `index` (0 to k-1, in any order, each once per group);
   * a shard shorter than the shard size reads as zero-padded.
   */
  add(index: number, shard: Uint8Array): void {
    if (shard.length > this.shardSize) {
      throw new RangeError(
        `Cannot add shard ${index}: ${shard.length} bytes is more than ${this.shardSize}`,
      );
    }
    const column = this.#column(index);
    const accumulators = this.#parity;
    column.apply([shard, ...accumulators], accumulators, this.shardSize);
    this.#added++;
  }

  /** How many shards of the current group were added. */
  get added(): number {
    return this.#added;
  }

  /**
   * The parity of the current group: `m` buffers of the shard size, valid
   * until {@linkcode reset}.
   */
  parity(): readonly Uint8Array[] {
    return this.#parity;
  }

  /** Starts the next group. */
  reset(): void {
    for (const shard of this.#parity) shard.fill(0);
    this.#added = 0;
  }

  /**
   * Row `j` of column `c`'s multiplier: parity `j` plus coefficient
   * `(k + j, c)` times the shard; the accumulators are inputs too, each
   * times 1 in its own row, so one pass adds the shard into all of them.
   */
  #column(c: number): ShardMultiplier {
    const k = this.dataShards;
    const m = this.parityShards;
    const found = this.#columns[c];
    if (found) return found;
    const matrix = new Uint8Array(m * (1 + m));
    for (let j = 0; j < m; j++) {
      matrix[j * (1 + m)] = this.#matrix[(k + j) * k + c]!;
      matrix[j * (1 + m) + 1 + j] = 1;
    }
    const column = new ShardMultiplier(matrix, m, 1 + m);
    this.#columns[c] = column;
    return column;
  }
}
