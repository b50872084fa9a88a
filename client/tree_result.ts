/**
 * What tree transfers take and report: the options of `sendTree` and
 * `getTree`, and the result printed by `--json`.
 *
 * @module
 */

import { ERROR_CODE, type ErrorCode } from "../base/errors.ts";
import type { CompressionMode } from "../protocol.ts";
import type { FecMode } from "../engine/fec.ts";
import type { ProgressEvent } from "../engine/transfer.ts";
import type { ClientOptions } from "./ftv_client.ts";

/** Options for {@linkcode sendTree} and {@linkcode getTree}. */
export interface TreeOptions extends ClientOptions {
  /** How chunks are compressed on the wire. @default "auto" */
  compress?: CompressionMode;
  /** Bytes per second to stay under. */
  limitRate?: number;
  /** Sync received files to disk (get). @default true */
  fsync?: boolean;
  /** Where a tree get writes. @default the tree's base name */
  out?: string;
  /**
   * A tree get whose `out` (given) is already a folder writes the tree into it as
   * `out/NAME`, as `cp -r` does; unless that folder holds one of the tree's
   * files (whole, or a part file): then it is the copy an earlier, stopped
   * get began, and the get resumes there. @default false: `out` is the copy
   */
  intoFolder?: boolean;
  /** Parity on the way for the tree's larger files (see `SendOptions.fec`). @default "off" */
  fec?: FecMode;
  /** Told how far the tree is, after every file. */
  onProgress?: (event: ProgressEvent) => void;
}

/** One file of a finished tree transfer. */
export interface TreeFile {
  /** Its name on the server. */
  name: string;
  /** Its size. */
  bytes: number;
  /** Its SHA-256, lowercase hex. */
  sha256: string;
}

/** What a tree transfer did, as reported by `--json`. */
export interface TreeResult {
  /** The top name, or the names sent, comma-separated. */
  name: string;
  /** Where the tree was read from or written to. */
  path: string;
  /** Files verified. */
  files: number;
  /** Folders made. */
  dirs: number;
  /** Bytes in those files. */
  bytes: number;
  /** Files the receiver already held whole (nothing travelled). */
  resumedFiles: number;
  /** Bytes this side put on (send) or took off (get) the wire. */
  wireBytes: number;
  /** Chunk frames sent again in repair rounds, and small files sent a second time. */
  retransmittedChunks: number;
  /** Symbolic links skipped (send). */
  skippedLinks: number;
  /** Connections used, counting reconnects. */
  connections: number;
  /** Wall-clock time. */
  seconds: number;
  /** Each file's name, size and SHA-256. */
  entries: TreeFile[];
}

/** Refusals that concern one file of a tree: the rest goes on. */
export const FILE_REFUSALS: ReadonlySet<ErrorCode> = new Set([
  ERROR_CODE.badName,
  ERROR_CODE.tooLarge,
  ERROR_CODE.notFound,
  ERROR_CODE.tooManyRetries,
]);

/** How many folders deep `name` lies: deepest folders are handled first. */
export function depth(name: string): number {
  let count = 0;
  for (const character of name) if (character === "/") count++;
  return count;
}
