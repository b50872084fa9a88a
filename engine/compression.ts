/**
 * Per-chunk compression with `node:zlib` (zstd or gzip). Each chunk is
 * compressed on its own, so any chunk can be re-sent or resumed alone, and a
 * chunk that does not shrink travels raw. In `auto` mode a 64 KiB sample is
 * tried first and incompressible data backs off exponentially, so random data
 * costs next to nothing.
 *
 * @module
 */

import {
  constants,
  gunzipSync,
  gzipSync,
  zstdCompressSync,
  zstdDecompressSync,
} from "node:zlib";
import { noteGarbage } from "../base/gc.ts";
import {
  CHUNK_FLAG,
  COMPRESSION_MODES,
  type CompressionMode,
  MAX_CHUNK_BYTES,
} from "../protocol.ts";

export { COMPRESSION_MODES, type CompressionMode };

/** Data frame flags saying how the payload is compressed (see `CHUNK_FLAG`). */
export const COMPRESSION_FLAG = {
  zstd: CHUNK_FLAG.zstd,
  gzip: CHUNK_FLAG.gzip,
} as const;

const SAMPLE_BYTES = 64 * 1024;
/**
 * In `auto` mode, chunks smaller than this go raw: a zstd call costs 70-150
 * µs of setup here, more than sending such a chunk takes on a fast link.
 */
const MIN_AUTO_COMPRESS_BYTES = 64 * 1024;
/** A sample must shrink below this share of its size for the chunk to be tried. */
const SAMPLE_RATIO = 0.9;
/** Chunks skipped at most after incompressible ones, in auto mode. */
const MAX_BACKOFF = 64;

/** A chunk as it goes on the wire. */
export interface EncodedChunk {
  payload: Uint8Array;
  flags: number;
}

/** Compresses outgoing chunks according to a {@linkcode CompressionMode}. */
export class ChunkCompressor {
  readonly mode: CompressionMode;
  #skip = 0;
  #backoff = 1;

  /** A compressor for `mode`. */
  constructor(mode: CompressionMode) {
    this.mode = mode;
  }

  /** The chunk's wire form: compressed when that makes it smaller, raw otherwise. */
  encode(payload: Uint8Array): EncodedChunk {
    const raw = { payload, flags: 0 };
    if (this.mode === "none" || payload.length === 0) return raw;
    if (this.mode === "gzip") {
      return smaller(
        gzipSync(payload, { level: 6 }),
        payload,
        COMPRESSION_FLAG.gzip,
      );
    }
    if (this.mode === "zstd") {
      return smaller(zstd(payload), payload, COMPRESSION_FLAG.zstd);
    }
    if (payload.length < MIN_AUTO_COMPRESS_BYTES) return raw;
    if (this.#skip > 0) {
      this.#skip--;
      return raw;
    }
    const sample = payload.subarray(0, SAMPLE_BYTES);
    if (
      payload.length > SAMPLE_BYTES &&
      zstd(sample).length > sample.length * SAMPLE_RATIO
    ) {
      return this.#incompressible(raw);
    }
    const encoded = smaller(zstd(payload), payload, COMPRESSION_FLAG.zstd);
    if (encoded.flags === 0) return this.#incompressible(raw);
    this.#backoff = 1;
    return encoded;
  }

  #incompressible(raw: EncodedChunk): EncodedChunk {
    this.#skip = this.#backoff;
    this.#backoff = Math.min(MAX_BACKOFF, this.#backoff * 2);
    return raw;
  }
}

/** How many times larger chunks are for data that compresses well. */
export const COMPRESSIBLE_CHUNK_FACTOR = 4;
/** A sample must shrink to this share of its size for chunks to grow. */
const COMPRESSIBLE_RATIO = 0.5;

/**
 * The chunk size for a file that starts with `sample`: `chunkSize`, or
 * {@linkcode COMPRESSIBLE_CHUNK_FACTOR} times it (at most `maxChunkSize`)
 * when the file will be compressed and the sample shrinks to half or less.
 * Each chunk is compressed on its own, and zstd finds far more repeats in a
 * large chunk, while a compressed chunk still takes few bytes on the wire.
 */
export function chunkSizeFor(
  sample: Uint8Array,
  mode: CompressionMode,
  chunkSize: number,
  maxChunkSize: number,
): number {
  if (mode === "none" || sample.length === 0) return chunkSize;
  const shrunk = zstd(sample).length <= sample.length * COMPRESSIBLE_RATIO;
  return shrunk
    ? Math.max(
      chunkSize,
      Math.min(maxChunkSize, chunkSize * COMPRESSIBLE_CHUNK_FACTOR),
    )
    : chunkSize;
}

function zstd(bytes: Uint8Array): Uint8Array {
  const compressed = zstdCompressSync(bytes, {
    params: { [constants.ZSTD_c_compressionLevel]: 3 },
  });
  noteGarbage(compressed.length);
  return compressed;
}

function smaller(
  compressed: Uint8Array,
  raw: Uint8Array,
  flag: number,
): EncodedChunk {
  return compressed.length < raw.length
    ? { payload: compressed, flags: flag }
    : { payload: raw, flags: 0 };
}

/**
 * The original bytes of a received chunk. Anything that does not decompress
 * to exactly `expectedLength` bytes (unknown flags, damage, a bomb) is a
 * `RangeError`; output is never allowed past `expectedLength`.
 */
export function decodeChunk(
  payload: Uint8Array,
  flags: number,
  expectedLength: number,
): Uint8Array {
  let bytes: Uint8Array;
  try {
    if (flags === CHUNK_FLAG.raw) bytes = payload;
    else if (flags === CHUNK_FLAG.zeros && payload.length === 0) {
      return zeros(expectedLength);
    } else if (flags === COMPRESSION_FLAG.zstd) {
      bytes = zstdDecompressSync(payload, { maxOutputLength: expectedLength });
    } else if (flags === COMPRESSION_FLAG.gzip) {
      bytes = gunzipSync(payload, { maxOutputLength: expectedLength });
    } else {
      throw new RangeError(`unknown flags ${flags}`);
    }
  } catch (cause) {
    throw new RangeError(
      `Cannot decode chunk: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (bytes.length !== expectedLength) {
    throw new RangeError(
      `Cannot decode chunk: ${bytes.length} bytes, expected ${expectedLength}`,
    );
  }
  if (bytes !== payload) noteGarbage(bytes.length);
  return bytes;
}

let zeroBuffer: Uint8Array | undefined;

/**
 * `length` zero bytes, as a view of one buffer shared by every zero chunk
 * (never written to), so a sparse file costs no memory per chunk.
 */
export function zeros(length: number): Uint8Array {
  if (length > MAX_CHUNK_BYTES) {
    throw new RangeError(
      `Cannot make ${length} zero bytes: over ${MAX_CHUNK_BYTES}`,
    );
  }
  zeroBuffer ??= new Uint8Array(MAX_CHUNK_BYTES);
  return zeroBuffer.subarray(0, length);
}
