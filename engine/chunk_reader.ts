/**
 * Reading a file's chunks straight into data frames, so a chunk is read once
 * into the buffer it is sent from.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { chunkSizeFor, type CompressionMode } from "./compression.ts";
import {
  allocDataFrame,
  DATA_FRAME_OVERHEAD,
  MAX_CHUNK_BYTES,
} from "../protocol.ts";
import { TransferError } from "../base/errors.ts";
import { chunkCount, chunkLength } from "./chunks.ts";
import type { ChunkSource } from "./chunk_source.ts";

/**
 * Frame buffers a reader cycles through. Reusing them instead of allocating
 * a fresh 1 MiB buffer per chunk saves the kernel mapping and zeroing memory.
 */
export const RING_FRAMES = 3;

/** Bytes read from the start of a file to judge how well it compresses. */
const SAMPLE_BYTES = 64 * 1024;

/**
 * The chunk size to send `source` (of `size` bytes) with: `chunkSize`,
 * larger when compressing pays (see {@linkcode chunkSizeFor}). A file that
 * fits in one chunk is not read.
 */
export async function chunkSizeOf(
  source: ChunkSource,
  size: number,
  mode: CompressionMode,
  chunkSize: number,
): Promise<number> {
  if (mode === "none" || size <= chunkSize) return chunkSize;
  const sample = new Uint8Array(Math.min(size, SAMPLE_BYTES));
  const filled = await source.readAt(0, sample);
  return chunkSizeFor(
    sample.subarray(0, filled),
    mode,
    chunkSize,
    MAX_CHUNK_BYTES,
  );
}

/** Reads chunks of a file straight into data frames. */
export class ChunkReader {
  /** Number of chunks in the file. */
  readonly count: number;
  #source: ChunkSource;
  #size: number;
  #chunkSize: number;
  #ring: Uint8Array[] = [];
  #nextSlot = 0;
  #apart: Uint8Array | undefined;

  /** A reader of `source`, `size` bytes in chunks of `chunkSize`. */
  constructor(source: ChunkSource, size: number, chunkSize: number) {
    this.#source = source;
    this.#size = size;
    this.#chunkSize = chunkSize;
    this.count = chunkCount(size, chunkSize);
  }

  /**
   * Chunk `seq` as a data frame with its payload in place, not yet sealed.
   * Frames come from a ring of {@linkcode RING_FRAMES} buffers: a frame is
   * valid until that many more have been read, which covers one being sent
   * while the next is read ahead.
   */
  frame(seq: number): Promise<Uint8Array> {
    const length = chunkLength(seq, this.#size, this.#chunkSize);
    return this.#read(seq, this.#slot(Math.max(0, length)));
  }

  /**
   * Chunk `seq` as a data frame in a buffer of its own, outside the ring, so
   * it leaves the frames of {@linkcode frame} alone; valid until the next
   * call. Must not overlap another read.
   */
  frameApart(seq: number): Promise<Uint8Array> {
    const length = chunkLength(seq, this.#size, this.#chunkSize);
    this.#apart ??= allocDataFrame(this.#chunkSize);
    return this.#read(
      seq,
      this.#apart.subarray(0, DATA_FRAME_OVERHEAD + Math.max(0, length)),
    );
  }

  async #read(seq: number, frame: Uint8Array): Promise<Uint8Array> {
    const payload = frame.subarray(DATA_FRAME_OVERHEAD);
    const filled = await this.#source.readAt(seq * this.#chunkSize, payload);
    if (filled < payload.length) {
      throw new TransferError(
        `Cannot read chunk ${seq}: the file shrank while being sent`,
      );
    }
    return frame;
  }

  /**
   * Starts reading chunk `seq` ahead of need. A sender that gives up (its
   * connection broke) leaves it pending while the file is closed: the
   * failure then surfaces only if awaited, never as an unhandled rejection.
   */
  prefetch(seq: number): Promise<Uint8Array> {
    const frame = this.frame(seq);
    frame.catch(() => undefined);
    return frame;
  }

  #slot(length: number): Uint8Array {
    const index = this.#nextSlot;
    this.#nextSlot = (index + 1) % RING_FRAMES;
    this.#ring[index] ??= allocDataFrame(this.#chunkSize);
    return this.#ring[index].subarray(0, DATA_FRAME_OVERHEAD + length);
  }

  /** Every chunk's CRC-32, for a receiver re-verifying its part file. */
  async checksums(): Promise<Uint32Array> {
    const sums = new Uint32Array(this.count);
    for (let seq = 0; seq < this.count; seq++) {
      sums[seq] = crc32((await this.frame(seq)).subarray(DATA_FRAME_OVERHEAD));
    }
    return sums;
  }
}
