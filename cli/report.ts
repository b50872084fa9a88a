/**
 * What a finished command prints: the progress summary, then the result as
 * text or, with `--json` (or JSON progress), as one JSON object; names from
 * the peer with their control and bidirectional characters escaped.
 *
 * @module
 */

import { formatBytes } from "../base/bytes.ts";
import type { Io } from "../base/io.ts";
import type { Logger } from "../base/log.ts";
import { printable } from "../base/printable.ts";
import type { TransferResult } from "../client.ts";
import type { TreeResult, Walk } from "../client.ts";
import type { DirEntry, FileEntry } from "../protocol.ts";
import type { ProgressReporter } from "./progress.ts";

/** Where a result goes and in which form. */
export interface ReportTo {
  /** Results (stdout) and messages (stderr). */
  io: Io;
  /** `--json`: one JSON object instead of text. */
  json: boolean;
  /** The transfer's progress, finished before the result is printed. */
  progress: ProgressReporter;
}

/**
 * `value` as one JSON line a terminal shows as it is: names from the peer
 * keep their controls as JSON escapes, so the line still parses back.
 */
function jsonLine(value: unknown): string {
  return printable(JSON.stringify(value));
}

/** Whether the result is printed as JSON: with JSON progress every stdout line is JSON. */
function asJson(to: ReportTo): boolean {
  return to.json || to.progress.mode === "json";
}

/** A verified file: `<sha256>  <path>`, or its numbers as JSON. */
export function reportFile(
  result: TransferResult,
  to: ReportTo,
  log: Logger,
): void {
  to.progress.finish(
    `${result.name}: ${formatBytes(result.bytes)} in ${
      result.seconds.toFixed(2)
    } s (${formatBytes(result.bytes / Math.max(result.seconds, 0.001))}/s), ${
      formatBytes(result.wireBytes)
    } on the wire, ${result.retransmittedChunks} chunk(s) resent, SHA-256 verified`,
  );
  if (asJson(to)) {
    to.io.out(jsonLine({
      name: result.name,
      path: result.path,
      sha256: result.sha256,
      bytes: result.bytes,
      chunks: result.chunks,
      retransmittedChunks: result.retransmittedChunks,
      rebuiltChunks: result.rebuiltChunks ?? 0,
      attempts: result.attempts,
      resumedChunks: result.resumedChunks,
      resumedBytes: result.resumedBytes,
      wireBytes: result.wireBytes,
      connections: result.connections ?? 1,
      seconds: result.seconds,
    }));
    return;
  }
  log.info(
    `Transfer Successful! Time taken: ${result.seconds.toFixed(2)} seconds`,
  );
  to.io.out(printable(`${result.sha256}  ${result.path}`));
}

/** A verified tree: its counts and where it is, or the whole result as JSON. */
export function reportTree(result: TreeResult, to: ReportTo): void {
  to.progress.finish(
    `${result.name}: ${result.files} file(s), ${formatBytes(result.bytes)} in ${
      result.seconds.toFixed(2)
    } s, ${
      formatBytes(result.wireBytes)
    } on the wire, every file SHA-256 verified`,
  );
  if (asJson(to)) {
    to.io.out(jsonLine(result));
    return;
  }
  to.io.out(printable(
    `${result.files} file(s), ${result.dirs} folder(s), ${result.bytes} bytes verified: ${result.path}`,
  ));
}

/** `send --dry-run`: each file's size and name, then a total. */
export function reportDryRun(walk: Walk, io: Io, json: boolean): void {
  const files = walk.entries.filter((entry) => entry.kind === "file");
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  const dirs = walk.entries.length - files.length;
  if (json) {
    io.out(jsonLine({
      dryRun: true,
      files: files.length,
      dirs,
      bytes,
      skippedLinks: walk.skippedLinks,
      entries: files.map((file) => ({ name: file.name, bytes: file.size })),
    }));
    return;
  }
  for (const file of files) {
    io.out(printable(`${String(file.size).padStart(12)}  ${file.name}`));
  }
  io.out(
    `${files.length} file(s), ${bytes} bytes (${
      formatBytes(bytes)
    }), ${dirs} folder(s): dry run, nothing sent`,
  );
}

/** `list`: `sha256  size  name` per file, `-  -  name/` per folder, by name. */
export function reportListing(
  listing: { files: FileEntry[]; dirs: DirEntry[] },
  io: Io,
  json: boolean,
): void {
  const { files, dirs } = listing;
  if (json) {
    io.out(jsonLine(dirs.length > 0 ? { files, dirs } : { files }));
    return;
  }
  const lines = [
    ...files.map((file) => ({
      name: file.name,
      line: `${file.sha256}  ${String(file.size).padStart(12)}  ${file.name}${
        file.damaged
          ? "  (DAMAGED: its bytes no longer match; send it again)"
          : ""
      }`,
    })),
    ...dirs.map((dir) => ({
      name: dir.name,
      line: `${"-".padEnd(64)}  ${"-".padStart(12)}  ${dir.name}/`,
    })),
  ].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  for (const { line } of lines) io.out(printable(line));
}
