/**
 * Uploading a tree over one connection, reconnecting and resuming when it
 * drops. Files of at most one chunk go up as eager puts, pipelined; larger
 * files, and small ones that failed, then go one by one the ordinary way
 * (with resume); folders go last, deepest first, so their mtimes are not
 * disturbed by the files written into them. The walk runs while files are
 * sent. The protocol is the client's: this module only decides what to send
 * when.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { secondsSince } from "../base/clock.ts";
import { RemoteError, TransferError } from "../base/errors.ts";
import { COMPONENT, Logger } from "../base/log.ts";
import { hashFile } from "../engine/digest.ts";
import { RateLimiter } from "../net/rate_limit.ts";
import { DEFAULT_MAX_RETRIES, FtvClient } from "./ftv_client.ts";
import type { EagerPutReply } from "./pipelined.ts";
import { reconnectOptions, withReconnect } from "./reconnect.ts";
import {
  depth,
  FILE_REFUSALS,
  type TreeFile,
  type TreeOptions,
  type TreeResult,
} from "./tree_result.ts";
import {
  emptyWalk,
  type TreeEntry,
  type Walk,
  walkEntries,
  type WalkOptions,
} from "./walk.ts";

/** Where one file of the tree stands. */
type FileState =
  | { status: "pending"; eager: boolean }
  | { status: "done"; sha256: string }
  | { status: "failed"; reason: string };

/**
 * Uploads files and folders (`paths`, walked as by `walkTree` while they
 * are sent) over one connection, reconnecting and resuming when it drops:
 * small files pipelined, large ones with resume, folders last. Every file
 * is verified by the server (per-chunk CRC, whole-file SHA-256). Throws a
 * {@linkcode TransferError} naming what could not be sent, after sending all
 * the rest; a `TypeError` for paths that cannot go together.
 *
 * @example
 * ```ts
 * import { sendTree } from "./send_tree.ts";
 * const result = await sendTree(["photos"], { host: "127.0.0.1", port: 9999 });
 * console.log(result.files, result.bytes);
 * ```
 */
export async function sendTree(
  paths: string[],
  options: TreeOptions & WalkOptions = {},
): Promise<TreeResult> {
  const upload = new TreeUpload(paths, options);
  await withReconnect(
    reconnectOptions(options, upload.log),
    async (attempt) => {
      using client = await FtvClient.connect({
        ...options,
        ...attempt.server,
        log: upload.log,
      });
      upload.connections = attempt.number;
      attempt.held(upload.filesDone());
      await upload.run(client);
    },
  );
  return upload.finish();
}

/** One tree upload: what was walked, where each file stands, the tallies. */
class TreeUpload {
  readonly log: Logger;
  connections = 0;
  #options: TreeOptions & WalkOptions;
  #started = performance.now();
  #walk: Walk = emptyWalk();
  #source: Generator<TreeEntry>;
  #walking = true;
  #files: TreeEntry[] = [];
  #states: FileState[] = [];
  #dirs: TreeEntry[] = [];
  #dirsDone = new Set<TreeEntry>();
  #limiter: RateLimiter | undefined;
  #tally = { bytes: 0, walked: 0, wire: 0, resent: 0, resumed: 0 };

  constructor(paths: string[], options: TreeOptions & WalkOptions) {
    this.#options = options;
    this.log = options.log ?? new Logger(COMPONENT.client);
    this.#source = walkEntries(
      paths,
      { ...options, log: this.log },
      this.#walk,
    );
    this.#limiter = options.limitRate === undefined
      ? undefined
      : new RateLimiter(options.limitRate);
    this.log.info(
      `Sending ${this.#walk.roots.map((root) => root.path).join(", ")}`,
    );
  }

  /** Files verified so far: progress that resets the reconnect budget. */
  filesDone(): number {
    return this.#states.filter((state) => state.status === "done").length;
  }

  /** Sends what is still pending over `client`. */
  async run(client: FtvClient): Promise<void> {
    const wireStart = client.bytesSent;
    try {
      await this.#sendSmallFiles(client);
      await this.#sendLargeFiles(client);
      await this.#makeFolders(client);
    } finally {
      this.#tally.wire += client.bytesSent - wireStart;
    }
  }

  /** Walks on to the next file; false once the walk is over. */
  #walkOn(): boolean {
    while (this.#walking) {
      const next = this.#source.next();
      if (next.done) {
        this.#walking = false;
        break;
      }
      if (next.value.kind === "dir") {
        this.#dirs.push(next.value);
        continue;
      }
      this.#files.push(next.value);
      this.#states.push({ status: "pending", eager: true });
      this.#tally.walked += next.value.size;
      return true;
    }
    return false;
  }

  /** Files of at most one chunk, as pipelined eager puts, walking as it goes. */
  async #sendSmallFiles(client: FtvClient): Promise<void> {
    const uploads = client.eagerUploads({
      compression: this.#options.compress ?? "auto",
      ...(this.#limiter ? { limiter: this.#limiter } : {}),
    });
    for (let index = 0; index < this.#files.length || this.#walkOn(); index++) {
      const file = this.#files[index]!;
      const state = this.#states[index]!;
      if (state.status !== "pending" || !state.eager) continue;
      const bytes = file.size > client.chunkSize ? undefined : readSmall(file);
      if (typeof bytes === "string") {
        this.#fail(index, bytes);
        continue;
      }
      if (bytes === undefined || bytes.length > client.chunkSize) {
        state.eager = false; // Large, or grew past one chunk: the ordinary way.
        continue;
      }
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      const small = { ...file, bytes, sha256 };
      await uploads.push(small, (reply) => this.#settle(index, sha256, reply));
    }
    await uploads.finish();
  }

  #settle(index: number, sha256: string, reply: EagerPutReply): void {
    const state = this.#states[index]!;
    if (reply.kind === "verified") {
      this.#finish(index, sha256, reply.held);
    } else if (reply.kind === "again") {
      if (state.status === "pending") state.eager = false;
      this.#tally.resent++;
    } else if (FILE_REFUSALS.has(reply.refusal.code)) {
      this.#fail(index, reply.refusal.reason);
    } else {
      throw new RemoteError(reply.refusal.code, reply.refusal.reason);
    }
  }

  /** Large files, and small ones that failed, one by one with resume. */
  async #sendLargeFiles(client: FtvClient): Promise<void> {
    const quiet = this.log.atLeast("WARNING");
    for (const [index, file] of this.#files.entries()) {
      if (this.#states[index]!.status !== "pending") continue;
      let sha256: string;
      try {
        // Hashed first, so a server that holds the file answers at once.
        sha256 = await hashFile(file.path);
      } catch (error) {
        this.#fail(index, (error as Error).message);
        continue;
      }
      try {
        const stats = await client.send(file.path, {
          as: file.name,
          knownSha256: sha256,
          compress: this.#options.compress ?? "auto",
          fec: this.#options.fec ?? "off",
          maxRetries: this.#options.maxRetries ?? DEFAULT_MAX_RETRIES,
          ...(this.#limiter ? { limiter: this.#limiter } : {}),
          log: quiet,
        });
        this.#tally.resent += stats.retransmittedChunks;
        this.#finish(index, stats.sha256, stats.attempts === 0);
      } catch (error) {
        if (!isFileFailure(error)) throw error;
        this.#fail(index, (error as Error).message);
      }
    }
  }

  /** Folders, deepest first, pipelined. */
  async #makeFolders(client: FtvClient): Promise<void> {
    const folders = client.folders(
      this.#limiter ? { limiter: this.#limiter } : {},
    );
    this.#dirs.sort((a, b) => depth(b.name) - depth(a.name));
    for (const dir of this.#dirs) {
      if (this.#dirsDone.has(dir)) continue;
      await folders.push(dir, (reply) => {
        if (reply.kind === "made") return void this.#dirsDone.add(dir);
        if (!FILE_REFUSALS.has(reply.refusal.code)) {
          throw new RemoteError(reply.refusal.code, reply.refusal.reason);
        }
        this.#dirsDone.add(dir);
        this.#walk.problems.push(reply.refusal.reason);
        this.log.error(reply.refusal.reason);
      });
    }
    await folders.finish();
  }

  #finish(index: number, sha256: string, resumed: boolean): void {
    const file = this.#files[index]!;
    this.#states[index] = { status: "done", sha256 };
    if (resumed) this.#tally.resumed++;
    this.log.debug(`Server verified ${file.name}: ${sha256}`);
    this.#tally.bytes += file.size;
    this.#options.onProgress?.({
      name: this.#walk.roots.map((root) => root.name).join(","),
      bytes: this.#tally.bytes,
      total: this.#tally.walked,
      retransmittedChunks: this.#tally.resent,
    });
  }

  #fail(index: number, reason: string): void {
    this.#states[index] = { status: "failed", reason };
    this.log.error(`Cannot send ${this.#files[index]!.path}: ${reason}`);
  }

  /** The result, once every attempt is over; throws naming what failed. */
  finish(): TreeResult {
    const result = this.#result();
    this.log.info(
      `Sent ${result.files} file(s) (${result.bytes} bytes) and ${result.dirs} folder(s) in ${
        result.seconds.toFixed(2)
      } s, every file verified${
        result.resumedFiles ? `, ${result.resumedFiles} already held` : ""
      }`,
    );
    const failed = this.#files.flatMap((file, index) => {
      const state = this.#states[index]!;
      return state.status === "failed" ? [`${file.path}: ${state.reason}`] : [];
    });
    const problems = [...this.#walk.problems, ...failed];
    if (problems.length > 0) {
      throw new TransferError(
        `Cannot send ${problems.length} entr${
          problems.length === 1 ? "y" : "ies"
        } of the tree (the rest was sent and verified): ${
          problems.slice(0, 3).join("; ")
        }${problems.length > 3 ? "; ..." : ""}`,
      );
    }
    return result;
  }

  #result(): TreeResult {
    const entries: TreeFile[] = [];
    for (const [index, file] of this.#files.entries()) {
      const state = this.#states[index]!;
      if (state.status !== "done") continue;
      entries.push({ name: file.name, bytes: file.size, sha256: state.sha256 });
    }
    const roots = this.#walk.roots;
    return {
      name: roots.map((root) => root.name).join(","),
      path: roots.map((root) => root.path).join(","),
      files: entries.length,
      dirs: this.#dirsDone.size,
      bytes: entries.reduce((sum, entry) => sum + entry.bytes, 0),
      resumedFiles: this.#tally.resumed,
      wireBytes: this.#tally.wire,
      retransmittedChunks: this.#tally.resent,
      skippedLinks: this.#walk.skippedLinks,
      connections: this.connections,
      seconds: secondsSince(this.#started),
      entries,
    };
  }
}

/** The whole of a small file, or why it cannot be read. */
function readSmall(file: TreeEntry): Uint8Array | string {
  try {
    // Sync: for a small file, the async call costs more than the read.
    return Deno.readFileSync(file.path);
  } catch (error) {
    return (error as Error).message;
  }
}

/** Whether `error` concerns one file only (a refusal, or a file that went away), not the session. */
function isFileFailure(error: unknown): boolean {
  return (error instanceof RemoteError && FILE_REFUSALS.has(error.code)) ||
    error instanceof Deno.errors.NotFound ||
    error instanceof Deno.errors.PermissionDenied;
}
