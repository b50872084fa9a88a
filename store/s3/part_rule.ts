/**
 * How a file is cut into the parts of an S3 multipart upload: every part is
 * a whole number of the transfer's chunks, at least 8 MiB (S3's floor is 5
 * MiB), and large enough that a file needs at most 10,000 parts (S3's
 * ceiling). So parts are 8 MiB up to 78 GiB files (in 1 MiB chunks), and
 * `size / 10,000` rounded up to whole chunks beyond. The largest file is
 * S3's largest object, 5 TiB (its parts are then about 525 MiB), or less
 * when the chunks are small: ftv's 2^24 chunks a file.
 *
 * @module
 */

import { ERROR_CODE, type Refusal, refusal } from "../../base/errors.ts";

/** S3's smallest part (all but the last). */
export const MIN_PART_BYTES = 5 * 1024 * 1024;
/** The part size ftv aims for: fewer requests than at the floor, little memory. */
export const TARGET_PART_BYTES = 8 * 1024 * 1024;
/** Most parts of one multipart upload. */
export const MAX_PARTS = 10_000;
/** S3's largest part. */
export const MAX_PART_BYTES = 5 * 1024 ** 3;
/** S3's largest object. */
export const MAX_OBJECT_BYTES = 5 * 1024 ** 4;

/**
 * Chunks per part for a file of `size` bytes in chunks of `chunkSize`.
 *
 * @example
 * ```ts
 * import { chunksPerPart } from "./part_rule.ts";
 * chunksPerPart(200e6, 1 << 20); // 8: parts of 8 MiB
 * chunksPerPart(1024 ** 4, 1 << 20); // 105: a 1 TiB file in 9,987 parts
 * ```
 */
export function chunksPerPart(size: number, chunkSize: number): number {
  const floor = Math.max(TARGET_PART_BYTES, Math.ceil(size / MAX_PARTS));
  return Math.max(1, Math.ceil(floor / chunkSize));
}

/** Why a file of `size` bytes cannot go to S3, or `undefined`. */
export function objectSizeRefusal(
  size: number,
  chunkSize: number,
): Refusal | undefined {
  if (size > MAX_OBJECT_BYTES) {
    return refusal(
      ERROR_CODE.tooLarge,
      `${size} bytes exceeds the ${MAX_OBJECT_BYTES}-byte limit of an S3 object`,
    );
  }
  if (chunksPerPart(size, chunkSize) * chunkSize > MAX_PART_BYTES) {
    return refusal(
      ERROR_CODE.tooLarge,
      `${size} bytes in ${chunkSize}-byte chunks needs parts over S3's 5 GiB`,
    );
  }
  return undefined;
}
