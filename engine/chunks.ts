/**
 * Chunks: how a file is cut into numbered pieces, and the one check of a
 * chunk size. Every side (server, client, command line) asks this module
 * whether a chunk size is acceptable, so the range lives in one place.
 *
 * @module
 */

import { ERROR_CODE, type Refusal, refusal } from "../base/errors.ts";
import { MAX_CHUNK_BYTES } from "../protocol.ts";
import type { ChunkBitmap } from "./bitmap.ts";

export { MAX_CHUNK_BYTES };
/** Smallest chunk size a peer may announce. */
export const MIN_CHUNK_BYTES = 512;
/** Chunk size used unless told otherwise: large I/O is cheap I/O. */
export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** Most chunks one file may have. */
export const MAX_CHUNKS_PER_FILE = 1 << 24;

/**
 * Why `chunkSize` cannot carry a file of `size` bytes, or `undefined` when
 * it can: outside {@linkcode MIN_CHUNK_BYTES}..{@linkcode MAX_CHUNK_BYTES}
 * (`bad_request`), or more than {@linkcode MAX_CHUNKS_PER_FILE} chunks
 * (`too_large`).
 *
 * @example
 * ```ts
 * import { chunkSizeRefusal } from "./chunks.ts";
 * console.log(chunkSizeRefusal(100)?.reason); // chunk size 100 is outside 512..16777216
 * ```
 */
export function chunkSizeRefusal(
  chunkSize: number,
  size = 0,
): Refusal | undefined {
  if (
    !Number.isSafeInteger(chunkSize) || chunkSize < MIN_CHUNK_BYTES ||
    chunkSize > MAX_CHUNK_BYTES
  ) {
    return refusal(
      ERROR_CODE.badRequest,
      `chunk size ${chunkSize} is outside ${MIN_CHUNK_BYTES}..${MAX_CHUNK_BYTES}`,
    );
  }
  if (chunkCount(size, chunkSize) > MAX_CHUNKS_PER_FILE) {
    return refusal(
      ERROR_CODE.tooLarge,
      `${size} bytes would take more than ${MAX_CHUNKS_PER_FILE} chunks of ${chunkSize} bytes`,
    );
  }
  return undefined;
}

/** Number of chunks in a file of `size` bytes. */
export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/** Byte length of chunk `seq`. */
export function chunkLength(
  seq: number,
  size: number,
  chunkSize: number,
): number {
  return Math.min(chunkSize, size - seq * chunkSize);
}

/** Bytes in the chunks set in `have`. */
export function bytesHeld(
  have: ChunkBitmap,
  size: number,
  chunkSize: number,
): number {
  let bytes = 0;
  for (let seq = 0; seq < have.size; seq++) {
    if (have.has(seq)) bytes += chunkLength(seq, size, chunkSize);
  }
  return bytes;
}

/**
 * Whether every byte of `bytes` is zero: such a chunk is a hole on disk and
 * travels as a zero-chunk frame. Stops at the first other byte, so data
 * that is not zeros costs next to nothing.
 */
export function isAllZero(bytes: Uint8Array): boolean {
  const head = Math.min(bytes.length, (4 - bytes.byteOffset % 4) % 4);
  for (let i = 0; i < head; i++) if (bytes[i] !== 0) return false;
  const words = new Uint32Array(
    bytes.buffer,
    bytes.byteOffset + head,
    (bytes.length - head) >>> 2,
  );
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  for (let i = head + words.length * 4; i < bytes.length; i++) {
    if (bytes[i] !== 0) return false;
  }
  return true;
}
