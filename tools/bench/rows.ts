/**
 * What a row of the bench is: what it moves (a {@linkcode Load}), how it
 * sets up, runs once and tears down, and what one run measured.
 *
 * @module
 */

import { BenchError, lastLine } from "./common.ts";
import type { Options } from "./options.ts";
import type { Finished } from "./processes.ts";
import { discard } from "./set_aside.ts";
import { checkCopy, type Source, type TextSource } from "./sources.ts";
import { checkTree, type TreeSource } from "./tree.ts";

/**
 * What a row moves: a file, or a folder (`rsync -r`), stored as `name` in
 * the receiver's folder, and how a copy of it is checked.
 */
export interface Load {
  path: string;
  name: string;
  bytes: number;
  folder: boolean;
  /**
   * Copies are kept until the bench ends, not deleted before the next timed
   * section: on ext4 without a journal (this VM's disk) a new inode skips
   * every inode freed in the last minute or so, one buffer lookup each, so
   * deleting a 10,000-file copy made each following copy slower (0.3 s to
   * 3 s by the sixth), whichever tool made it.
   */
  keep: boolean;
  /**
   * Much smaller than the random file: its row does not free what was set
   * aside (see `releaseSetAside`), or the row after it would write
   * its big copy into fresh memory, ~2 CPU-s per GiB more here.
   */
  light: boolean;
  /** Rows compare only with rows of the same workload; none = the random file. */
  workload?: Workload;
  check(copy: string, index: number, what: string): Promise<void>;
}

/** What a row moves, when it is not the random file. */
export type Workload = "text" | "tree";

/** A file as a {@linkcode Load}: its size each run, its SHA-256 on run 0. */
export function fileLoad(
  source: Source,
  name: string,
  workload?: Workload,
): Load {
  return {
    path: source.path,
    name,
    bytes: source.size,
    folder: false,
    keep: false,
    // The random file is the big one; the other files are light.
    light: workload !== undefined,
    ...(workload ? { workload } : {}),
    check: (copy, index, what) => checkCopy(copy, source, index === 0, what),
  };
}

/** The tree as a {@linkcode Load}: stored as `tree`, its copies kept. */
export function treeLoad(tree: TreeSource): Load {
  return {
    path: tree.path,
    name: "tree",
    bytes: tree.bytes,
    folder: true,
    keep: true,
    light: true,
    workload: "tree",
    check: (copy, _index, what) => checkTree(copy, tree, what),
  };
}

/** What one timed run measured. */
export interface Sample {
  /** Wall time of the timed section. */
  ms: number;
  /** Bytes that crossed the connection (size, or twice for a round trip). */
  bytes: number;
  serverRss?: number;
  clientRss?: number;
  /** CPU seconds (user + system) of the server, and of all clients. */
  serverCpu?: number;
  clientCpu?: number;
  /** Seconds ftv itself reported (inside the client, after start-up). */
  ftvSeconds?: number;
  /** Chunks sent again in repair rounds. */
  retransmitted?: number;
  /** Rounds to verified (1: no repair round). */
  attempts?: number;
  /** Bytes ftv put on the wire / bytes it moved, as it reported them. */
  wireShare?: number;
}

/** One line of the report: ftv or a baseline moving one load. */
export interface Row {
  id: string;
  label: string;
  kind: "ftv" | "baseline";
  workload?: Workload;
  /** Why it did not run (missing tool, failed set-up or run). */
  skipped?: string;
  samples: Sample[];
  setup?(): Promise<void>;
  run(index: number): Promise<Sample>;
  teardown?(): Promise<void>;
}

/** What every row may use: the options, the folder and the sources. */
export interface Context {
  options: Options;
  work: string;
  source: Source;
  small?: Source;
  /** The `send-text` and `send-log` rows' files and the tree rows' folder, when wanted. */
  text?: TextSource;
  log?: Source;
  tree?: TreeSource;
  /** Generous per-command timeout for a transfer of `bytes`. */
  timeout(bytes: number): number;
}

/** A row that does not run, and why. */
export function skippedRow(
  id: string,
  label: string,
  reason: string,
  kind: Row["kind"] = "baseline",
): Row {
  return {
    id,
    label,
    kind,
    samples: [],
    skipped: reason,
    run: () => Promise.reject(new Error("skipped")),
  };
}

/**
 * A baseline's sample once its timed command has `finished`: a failure is
 * an error, the copy of `load` is checked and set aside.
 */
export async function baselineSample(
  tool: string,
  finished: Finished,
  load: Load,
  run: { copy: string; index: number; label: string },
): Promise<Sample> {
  if (finished.code !== 0) {
    throw new BenchError(`${tool} failed: ${lastLine(finished.stderr)}`);
  }
  await load.check(run.copy, run.index, run.label);
  await discard(run.copy, load.keep);
  return { ms: finished.ms, bytes: load.bytes };
}
