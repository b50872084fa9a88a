/**
 * What every request handler of a server shares: the store, the limits,
 * the uploads under way, and where to log.
 *
 * @module
 */

import type { Logger } from "../base/log.ts";
import type { ChunkFaults } from "../engine/transfer.ts";
import type { Store } from "../store.ts";

/** Most repair rounds the server grants one transfer. */
export const MAX_SERVER_ROUNDS = 100;

/** The limits a server puts on what it stores. */
export interface StoreLimits {
  /** Largest file accepted, in bytes. */
  maxFileSize: number;
  /** Most bytes all stored files (and unfinished uploads) may take together. */
  maxTotalBytes: number;
}

/** The state and settings request handlers share. */
export interface ServerContext {
  /** The stored files, and the uploads under way: a local folder or an S3 bucket. */
  readonly store: Store;
  /** Chunk size for files this server sends. */
  readonly chunkSize: number;
  /** Faults injected into outgoing chunks (`--simulate-errors`). */
  readonly faults: ChunkFaults | undefined;
  /** What may be stored. */
  readonly limits: StoreLimits;
  /** Sync received files before they take their final name. */
  readonly fsync: boolean;
  /** Where handlers log. */
  readonly log: Logger;
  /** Names being uploaded right now by this process. */
  readonly busyNames: Set<string>;
  /** A fresh transfer id. */
  nextTransferId(): number;
  /** This session's peer takes chunks of zeros as frames with no payload. */
  readonly zeroChunks?: boolean;
}

/** What one session stored through eager puts and `mkdir`, for its summary line. */
export interface TreeTally {
  /** Small files stored. */
  files: number;
  /** Their bytes. */
  bytes: number;
  /** Folders made. */
  dirs: number;
}
