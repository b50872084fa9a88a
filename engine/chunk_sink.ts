/**
 * Where a receiver puts a file's chunks: the interface the engine owns and
 * every store implements (the part file of `chunk_store.ts`, a multipart
 * upload in an S3 bucket), so the receiver never knows which one it is.
 *
 * @module
 */

import type { ChunkBitmap } from "./bitmap.ts";
import type { Manifest } from "./resume_state.ts";

/**
 * A file being received, chunk by chunk, resumable: chunks are taken in any
 * order, held ones are never overwritten, and the whole-file digest is
 * known once every chunk is held. Nothing is visible under the file's final
 * name before {@linkcode finalize}.
 */
export interface ChunkSink {
  /** What file this is. */
  readonly manifest: Manifest;
  /** Chunks held (taken and kept). */
  readonly have: ChunkBitmap;
  /** Number of chunks in the file. */
  readonly count: number;
  /** Where the chunks go, for log lines (a path, an object key). */
  readonly label: string;
  /**
   * Chunks may be held whose state was lost: they count only once checked
   * against the sender's chunk checksums with {@linkcode verifyPart}.
   */
  readonly needsVerification: boolean;
  /** Chunks already held from an earlier run. */
  readonly resumedChunks: number;
  /** Bytes of those chunks. */
  readonly resumedBytes: number;
  /** Keeps the chunks whose CRC-32 matches `crcs`; resolves to the count held. */
  verifyPart(crcs: Uint32Array): Promise<number>;
  /**
   * Takes chunk `seq` (its exact length); resolves once it is held. A chunk
   * already held is ignored. `release` is told when the sink is done with
   * `payload`.
   */
  accept(
    seq: number,
    payload: Uint8Array,
    release?: (payload: Uint8Array) => void,
  ): Promise<void>;
  /** Reads held chunk `seq` into `into` (its length), after every accepted chunk. */
  readChunk(seq: number, into: Uint8Array): Promise<void>;
  /** Waits until every chunk accepted so far is held. */
  flush(): Promise<void>;
  /** The SHA-256 (hex) of the whole file; every chunk must be held. */
  digest(): Promise<string>;
  /** Gives the file its final name (after its digest was checked). */
  finalize(): Promise<unknown>;
  /** Drops everything held: the next run starts afresh. */
  discard(): Promise<void>;
  /** Saves what is held for a later run and lets go. */
  suspend(): Promise<void>;
}
