/**
 * A systematic Reed-Solomon erasure code over GF(2^8): `k` data shards
 * followed by `m` parity shards, and any `k` of the `k + m` rebuild the rest
 * exactly. ftv uses it on disk (parity beside a stored file rebuilds rotted
 * chunks) and on the wire (parity after each group of chunks rebuilds lost
 * or damaged ones without a round trip).
 *
 * Shards are byte arrays of one size, the shard size, except that the last
 * data shard may be shorter: it reads as if padded with zeros (a file's
 * last chunk), and the caller keeps its real length. An erasure code needs
 * to be told which shards are bad: pass lost ones as `undefined`, and let
 * per-shard CRC-32s ({@linkcode ReconstructOptions.crc32s}) or
 * {@linkcode damagedShards} turn damaged ones into missing ones.
 *
 * The matrix is Backblaze's (as in klauspost/reedsolomon and
 * reed-solomon-erasure): parity is byte for byte the same as theirs.
 *
 * @example
 * ```ts
 * import { ReedSolomon } from "./reed_solomon.ts";
 * const rs = new ReedSolomon(4, 2);
 * const data = [1, 2, 3, 4].map((n) => new Uint8Array(1024).fill(n));
 * const parity = rs.encode(data);
 * const shards = [...data, ...parity] as (Uint8Array | undefined)[];
 * shards[0] = undefined; // lost
 * shards[3] = undefined; // lost
 * const repair = rs.reconstruct(shards);
 * console.log(repair.ok, shards[3]![0]); // true 4
 * ```
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { ShardMultiplier } from "./_kernel.ts";
import { encodingMatrix, invert, multiply } from "./_matrix.ts";

/** Most shards (data plus parity) in one group: the field has 256 elements. */
export const MAX_SHARDS = 255;

/** Decode matrices kept per code, one per pattern of lost shards. */
const DECODER_CACHE_SIZE = 64;

/** Options of {@linkcode ReedSolomon.reconstruct}. */
export interface ReconstructOptions {
  /**
   * Indices of shards known to be lost or damaged, besides those that are
   * `undefined`: their buffers are not read, and are overwritten.
   * @default []
   */
  readonly missing?: Iterable<number>;
  /**
   * The expected CRC-32 (as `node:zlib` computes it) of each shard's bytes,
   * `k + m` of them: a shard that does not match is treated as missing (see
   * {@linkcode damagedShards}).
   */
  readonly crc32s?: ArrayLike<number>;
  /**
   * Rebuild data shards only, leaving missing parity shards as they are (a
   * receiver that wants the file, not the parity).
   * @default false
   */
  readonly dataOnly?: boolean;
}

/**
 * What {@linkcode ReedSolomon.reconstruct} did: the shards it rebuilt, or,
 * when fewer than `k` shards were usable, which were not and why. Nothing
 * is written in that case: too few shards is reported, never guessed.
 */
export type Repair =
  | { readonly ok: true; readonly rebuilt: readonly number[] }
  | {
    readonly ok: false;
    /** Indices of the shards that were lost or damaged. */
    readonly unusable: readonly number[];
    /** One line for people: `Cannot rebuild shards: ...`. */
    readonly reason: string;
  };

/**
 * A Reed-Solomon code with `dataShards` data and `parityShards` parity
 * shards per group. Instances cache their decode matrices; they are cheap
 * to keep and safe to share.
 *
 * @example
 * ```ts
 * import { ReedSolomon } from "./reed_solomon.ts";
 * const rs = new ReedSolomon(16, 2);
 * console.log(rs.totalShards); // 18
 * ```
 */
export class ReedSolomon {
  /** Data shards per group, `k` (at least 1). */
  readonly dataShards: number;
  /** Parity shards per group, `m` (0 means no parity: nothing to rebuild from). */
  readonly parityShards: number;
  /** `k + m`, at most {@linkcode MAX_SHARDS}. */
  readonly totalShards: number;
  #matrix: Uint8Array;
  #encoder: ShardMultiplier;
  #decoders = new Map<string, ShardMultiplier>();

  /**
   * A code with `dataShards` >= 1 and `parityShards` >= 0 shards, together
   * at most {@linkcode MAX_SHARDS}; other counts are a `RangeError`.
   */
  constructor(dataShards: number, parityShards: number) {
    if (!Number.isSafeInteger(dataShards) || dataShards < 1) {
      throw new RangeError(
        `Cannot create Reed-Solomon code: data shards "${dataShards}" is not a whole number >= 1`,
      );
    }
    if (!Number.isSafeInteger(parityShards) || parityShards < 0) {
      throw new RangeError(
        `Cannot create Reed-Solomon code: parity shards "${parityShards}" is not a whole number >= 0`,
      );
    }
    if (dataShards + parityShards > MAX_SHARDS) {
      throw new RangeError(
        `Cannot create Reed-Solomon code: ${dataShards} + ${parityShards} shards is more than ${MAX_SHARDS}`,
      );
    }
    this.dataShards = dataShards;
    this.parityShards = parityShards;
    this.totalShards = dataShards + parityShards;
    this.#matrix = encodingMatrix(dataShards, parityShards);
    this.#encoder = new ShardMultiplier(
      this.#matrix.subarray(dataShards * dataShards),
      parityShards,
      dataShards,
    );
  }

  /**
   * Computes the parity of `data` (`k` shards) into `parity` (`m` buffers
   * of the shard size), or into new buffers when `parity` is left out, and
   * returns them. The shard size is that of the longest shard given (so
   * with one data shard, pass `parity` to fix it); every data shard but the
   * last must have it. Wrong counts or sizes are a `RangeError`. Reuse
   * `parity` buffers from group to group: fresh megabytes cost more time
   * than encoding them.
   *
   * @example
   * ```ts
   * import { ReedSolomon } from "./reed_solomon.ts";
   * const rs = new ReedSolomon(2, 1);
   * const [parity] = rs.encode([new Uint8Array([1, 2]), new Uint8Array([3])]);
   * console.log(parity); // Uint8Array(2) [ 5, 6 ]
   * ```
   */
  encode(
    data: readonly Uint8Array[],
    parity?: readonly Uint8Array[],
  ): Uint8Array[] {
    const k = this.dataShards;
    const m = this.parityShards;
    if (data.length !== k) {
      throw new RangeError(
        `Cannot encode: ${data.length} data shards given, the code has ${k}`,
      );
    }
    if (parity !== undefined && parity.length !== m) {
      throw new RangeError(
        `Cannot encode: ${parity.length} parity buffers given, the code has ${m}`,
      );
    }
    const shardSize = Math.max(
      ...data.map((shard) => shard.length),
      ...(parity ?? []).map((shard) => shard.length),
    );
    data.forEach((shard, i) => this.#checkSize("encode", shard, i, shardSize));
    parity?.forEach((shard, i) =>
      this.#checkSize("encode", shard, k + i, shardSize)
    );
    const out = parity
      ? [...parity]
      : Array.from({ length: m }, () => new Uint8Array(shardSize));
    this.#encoder.apply(data, out, shardSize);
    return out;
  }

  /**
   * Rebuilds the shards of `shards` (`k + m` entries, in order) that are
   * `undefined`, listed in `options.missing`, or fail `options.crc32s`, from
   * any `k` of the others. A rebuilt shard is written into the buffer at
   * its index, or into a new one of the shard size stored there when it was
   * `undefined` (trim the last data shard to its real length yourself). The
   * shard size is that of the longest shard given; every shard but the last
   * data shard must have it, else `RangeError`. With fewer than `k` usable
   * shards nothing is written and the result says which were missing.
   *
   * @example
   * ```ts
   * import { ReedSolomon } from "./reed_solomon.ts";
   * import { crc32 } from "node:zlib";
   * const rs = new ReedSolomon(2, 1);
   * const data = [new Uint8Array([1, 2]), new Uint8Array([3])];
   * const shards = [...data, ...rs.encode(data)];
   * const crc32s = shards.map((shard) => crc32(shard));
   * shards[1]![0] = 99; // rot
   * console.log(rs.reconstruct(shards, { crc32s }), shards[1]); // { ok: true, rebuilt: [ 1 ] } Uint8Array(1) [ 3 ]
   * ```
   */
  reconstruct(
    shards: (Uint8Array | undefined)[],
    options: ReconstructOptions = {},
  ): Repair {
    const k = this.dataShards;
    const n = this.totalShards;
    if (shards.length !== n) {
      throw new RangeError(
        `Cannot reconstruct: ${shards.length} shards given, the code has ${n}`,
      );
    }
    const unusable = new Set<number>();
    for (let i = 0; i < n; i++) if (shards[i] === undefined) unusable.add(i);
    for (const i of options.missing ?? []) {
      if (!Number.isInteger(i) || i < 0 || i >= n) {
        throw new RangeError(
          `Cannot reconstruct: missing shard "${i}" is outside 0..${n - 1}`,
        );
      }
      unusable.add(i);
    }
    if (options.crc32s !== undefined) {
      for (const i of damagedShards(shards, options.crc32s)) unusable.add(i);
    }
    const lost = [...unusable].sort((a, b) => a - b);
    const wanted = lost.filter((i) => !options.dataOnly || i < k);
    // Sizes: every buffer that is read or written (not a skipped parity).
    const sized: number[] = [];
    for (let i = 0; i < n; i++) {
      if (shards[i] && (!unusable.has(i) || wanted.includes(i))) sized.push(i);
    }
    const shardSize = Math.max(0, ...sized.map((i) => shards[i]!.length));
    for (const i of sized) {
      this.#checkSize("reconstruct", shards[i]!, i, shardSize);
    }
    if (lost.length > this.parityShards) {
      return {
        ok: false,
        unusable: lost,
        reason: `Cannot rebuild shards: ${lost.length} of ${n} are lost or ` +
          `damaged (${lost.join(", ")}), parity covers ${this.parityShards}`,
      };
    }
    if (wanted.length === 0) return { ok: true, rebuilt: [] };

    const inputs: number[] = [];
    for (let i = 0; i < n && inputs.length < k; i++) {
      if (!unusable.has(i)) inputs.push(i);
    }
    for (const i of wanted) shards[i] ??= new Uint8Array(shardSize);
    this.#decoder(inputs, wanted).apply(
      inputs.map((i) => shards[i]!),
      wanted.map((i) => shards[i]!),
      shardSize,
    );
    return { ok: true, rebuilt: wanted };
  }

  /**
   * The multiplier that turns the shards at `inputs` (k of them) into those
   * at `outputs`: rows `outputs` of the encoding matrix times the inverse of
   * its rows `inputs`, cached per pattern.
   */
  #decoder(inputs: number[], outputs: number[]): ShardMultiplier {
    const key = `${inputs.join(",")}>${outputs.join(",")}`;
    const cached = this.#decoders.get(key);
    if (cached) {
      this.#decoders.delete(key);
      this.#decoders.set(key, cached);
      return cached;
    }
    const k = this.dataShards;
    const rowsOf = (indices: number[]) => {
      const rows = new Uint8Array(indices.length * k);
      indices.forEach((index, r) =>
        rows.set(this.#matrix.subarray(index * k, index * k + k), r * k)
      );
      return rows;
    };
    const inverse = invert(rowsOf(inputs), k);
    const matrix = multiply(rowsOf(outputs), inverse, outputs.length, k, k);
    const decoder = new ShardMultiplier(matrix, outputs.length, k);
    this.#decoders.set(key, decoder);
    if (this.#decoders.size > DECODER_CACHE_SIZE) {
      this.#decoders.delete(this.#decoders.keys().next().value!);
    }
    return decoder;
  }

  #checkSize(
    action: string,
    shard: Uint8Array,
    index: number,
    shardSize: number,
  ): void {
    const short = index === this.dataShards - 1;
    if (shard.length === shardSize || (short && shard.length < shardSize)) {
      return;
    }
    throw new RangeError(
      `Cannot ${action}: shard ${index} has ${shard.length} bytes, the others ${shardSize}` +
        " (only the last data shard may be shorter)",
    );
  }
}

/**
 * Indices of the shards whose bytes do not match their expected CRC-32
 * (as `node:zlib` computes it); `undefined` shards are skipped. Pass the
 * result as {@linkcode ReconstructOptions.missing}, or give the CRCs to
 * {@linkcode ReedSolomon.reconstruct} directly.
 *
 * @example
 * ```ts
 * import { damagedShards } from "./reed_solomon.ts";
 * import { crc32 } from "node:zlib";
 * const shards = [new Uint8Array([1]), new Uint8Array([2])];
 * const crc32s = shards.map((shard) => crc32(shard));
 * shards[1]![0] = 7;
 * console.log(damagedShards(shards, crc32s)); // [ 1 ]
 * ```
 */
export function damagedShards(
  shards: readonly (Uint8Array | undefined)[],
  crc32s: ArrayLike<number>,
): number[] {
  if (crc32s.length !== shards.length) {
    throw new RangeError(
      `Cannot check shards: ${crc32s.length} CRC-32s for ${shards.length} shards`,
    );
  }
  const damaged: number[] = [];
  shards.forEach((shard, i) => {
    if (shard !== undefined && crc32(shard) !== crc32s[i]! >>> 0) {
      damaged.push(i);
    }
  });
  return damaged;
}
