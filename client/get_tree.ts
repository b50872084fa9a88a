/**
 * Downloading a stored tree over one connection, reconnecting when it
 * drops: files of at most one chunk by pipelined eager gets, larger ones and
 * any that arrived damaged by ordinary gets with resume. Files already there
 * with the same size, mtime and SHA-256 are kept; modes and mtimes are
 * restored, folders' last. Every listed name is checked before anything is
 * written, so a hostile server cannot make this write outside `out`.
 *
 * @module
 */

import { secondsSince } from "../base/clock.ts";
import { ProtocolError } from "../base/errors.ts";
import { COMPONENT, Logger } from "../base/log.ts";
import {
  basename,
  folderOf,
  pathKind,
  withoutTrailingSlashes,
} from "../base/paths.ts";
import { receivedMode } from "../engine/file_mode.ts";
import { writeWhole } from "../engine/atomic_file.ts";
import { hashFile } from "../engine/digest.ts";
import { PART_SUFFIX, pathRefusal } from "../protocol/names.ts";
import { DEFAULT_MAX_RETRIES, FtvClient } from "./ftv_client.ts";
import type { EagerGetReply } from "./pipelined.ts";
import { reconnectOptions, withReconnect } from "./reconnect.ts";
import { depth, type TreeOptions, type TreeResult } from "./tree_result.ts";

/** A listed file and where it lands. */
interface ListedFile {
  name: string;
  path: string;
  size: number;
  sha256: string;
  mtimeMs: number;
}

/** A listed folder and where it lands. */
interface ListedDir {
  name: string;
  path: string;
  mode: number;
  mtimeMs: number;
}

/** The server's listing of a tree. */
type Listing = Awaited<ReturnType<FtvClient["listTree"]>>;

/** A listing with where each entry lands. */
interface LocalListing {
  files: ListedFile[];
  dirs: ListedDir[];
}

/**
 * Downloads the stored tree `name` (its files and folders) into `out`
 * (default: the tree's base name). Resolves to `undefined` when the server
 * holds nothing under `name`.
 *
 * @example
 * ```ts
 * import { getTree } from "./get_tree.ts";
 * const result = await getTree("photos", { host: "127.0.0.1", port: 9999 });
 * console.log(result?.files);
 * ```
 */
export async function getTree(
  name: string,
  options: TreeOptions = {},
): Promise<TreeResult | undefined> {
  const download = new TreeDownload(name, options);
  await withReconnect(
    reconnectOptions(options, download.log),
    async (attempt) => {
      using client = await FtvClient.connect({
        ...options,
        ...attempt.server,
        log: download.log.atLeast("WARNING"),
      });
      download.connections = attempt.number;
      attempt.held(download.filesDone());
      await download.run(client);
    },
  );
  return await download.finish();
}

/** One tree download: the listing, the files done, the tallies. */
class TreeDownload {
  readonly log: Logger;
  connections = 0;
  #name: string;
  #out: string;
  #options: TreeOptions;
  #started = performance.now();
  #listing: LocalListing | undefined;
  #done = new Map<string, string>();
  #total = 0;
  #tally = { bytes: 0, wire: 0, resent: 0, resumed: 0 };

  constructor(name: string, options: TreeOptions) {
    this.#name = name;
    this.#options = options;
    this.log = options.log ?? new Logger(COMPONENT.client);
    this.#out = withoutTrailingSlashes(options.out ?? basename(name));
  }

  /**
   * Where each listed entry lands. With `intoFolder`, an `out` given that is
   * already a folder receives the tree as `out/NAME`, unless it holds one of
   * the tree's files whole or in part: then it is this tree's copy from a
   * get that was stopped, resumed in place.
   */
  async #place(listing: Listing): Promise<LocalListing> {
    const here = localPaths(this.#name, this.#out, listing);
    const { intoFolder, out } = this.#options;
    if (
      !intoFolder || out === undefined ||
      await pathKind(this.#out) !== "folder"
    ) {
      return here;
    }
    for (const file of here.files) {
      const part = await pathKind(file.path + PART_SUFFIX);
      if (part === "file" || await holdsLocally(file)) {
        return here;
      }
    }
    this.#out = `${this.#out}/${basename(this.#name)}`;
    return localPaths(this.#name, this.#out, listing);
  }

  /** Files received so far: progress that resets the reconnect budget. */
  filesDone(): number {
    return this.#done.size;
  }

  /** Lists the tree (once) and fetches what is still missing over `client`. */
  async run(client: FtvClient): Promise<void> {
    const wireStart = client.bytesReceived;
    try {
      this.#listing ??= await this.#place(await client.listTree(this.#name));
      const { files, dirs } = this.#listing;
      this.#total = files.reduce((sum, file) => sum + file.size, 0);
      if (files.length === 0 && dirs.length === 0) return;
      if (this.#done.size === 0) {
        this.log.info(
          `Receiving ${this.#name}: ${files.length} file(s), ${dirs.length} folder(s)`,
        );
      }
      for (const dir of dirs) await Deno.mkdir(dir.path, { recursive: true });
      await this.#getSmallFiles(client, files);
      await this.#getLargeFiles(client, files);
    } finally {
      this.#tally.wire += client.bytesReceived - wireStart;
    }
  }

  /**
   * Small files, pipelined: each comes whole in answer to an eager get. One
   * that fails any check is got the ordinary way afterwards. Under a rate
   * limit every file goes the ordinary way, where the limit is kept.
   */
  async #getSmallFiles(client: FtvClient, files: ListedFile[]): Promise<void> {
    if (this.#options.limitRate !== undefined) return;
    const downloads = client.eagerDownloads({
      compression: this.#options.compress ?? "auto",
    });
    const folders = new Set<string>();
    for (const file of files) {
      if (this.#done.has(file.name) || file.size > client.chunkSize) continue;
      if (await holdsLocally(file)) {
        this.#tally.resumed++;
        this.#received(file);
        continue;
      }
      const folder = folderOf(file.path);
      if (!folders.has(folder)) {
        await Deno.mkdir(folder, { recursive: true });
        folders.add(folder);
      }
      await downloads.push(file.name, file.size, (reply) => {
        if (this.#store(file, reply)) this.#received(file);
      });
    }
    await downloads.finish();
  }

  /** Writes an eagerly got file that is exactly what the listing says; false to get it again. */
  #store(file: ListedFile, reply: EagerGetReply): boolean {
    if (reply.kind !== "got") return false;
    const { offer, bytes } = reply;
    if (offer.size !== file.size || offer.sha256 !== file.sha256) return false;
    const written = writeWhole(file.path, bytes, {
      mode: offer.mode ?? 0o644,
      mtimeMs: offer.mtimeMs,
      fsync: this.#options.fsync ?? true,
    });
    return written.ok;
  }

  /** Large files, and small ones that failed, one by one with resume. */
  async #getLargeFiles(client: FtvClient, files: ListedFile[]): Promise<void> {
    const options = this.#options;
    for (const file of files) {
      if (this.#done.has(file.name)) continue;
      if (await holdsLocally(file)) {
        this.#tally.resumed++;
      } else {
        await Deno.mkdir(folderOf(file.path), { recursive: true });
        const stats = await client.get(file.name, {
          out: file.path,
          expectSha256: file.sha256,
          fsync: options.fsync ?? true,
          maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
          compress: options.compress ?? "auto",
          fec: options.fec ?? "off",
          ...(options.limitRate === undefined
            ? {}
            : { limitRate: options.limitRate }),
        });
        this.#tally.resent += stats.retransmittedChunks;
      }
      this.#received(file);
    }
  }

  #received(file: ListedFile): void {
    this.#done.set(file.name, file.sha256);
    this.#tally.bytes += file.size;
    this.log.debug(`Received ${file.name} (${file.size} bytes)`);
    this.#options.onProgress?.({
      name: this.#name,
      bytes: this.#tally.bytes,
      total: this.#total,
      retransmittedChunks: this.#tally.resent,
    });
  }

  /** Restores folders' modes and mtimes, deepest first, and reports. */
  async finish(): Promise<TreeResult | undefined> {
    const listing = this.#listing;
    if (!listing || (listing.files.length === 0 && listing.dirs.length === 0)) {
      return undefined;
    }
    const dirs = [...listing.dirs].sort((a, b) =>
      depth(b.name) - depth(a.name)
    );
    for (const dir of dirs) {
      await Deno.chmod(dir.path, receivedMode(dir.mode, dir.path));
      await Deno.utime(dir.path, new Date(), new Date(dir.mtimeMs));
    }
    const result: TreeResult = {
      name: this.#name,
      path: this.#out,
      files: this.#done.size,
      dirs: listing.dirs.length,
      bytes: this.#tally.bytes,
      resumedFiles: this.#tally.resumed,
      wireBytes: this.#tally.wire,
      retransmittedChunks: this.#tally.resent,
      skippedLinks: 0,
      connections: this.connections,
      seconds: secondsSince(this.#started),
      entries: listing.files.map((file) => ({
        name: file.name,
        bytes: file.size,
        sha256: file.sha256,
      })),
    };
    this.log.info(
      `Received ${result.files} file(s) (${result.bytes} bytes) and ${result.dirs} folder(s) into ${this.#out} in ${
        result.seconds.toFixed(2)
      } s, every file verified`,
    );
    return result;
  }
}

/**
 * Where each listed entry lands under `out`; a name that is not `prefix` or
 * under it, or that could leave `out`, is a protocol error.
 */
function localPaths(
  prefix: string,
  out: string,
  listing: Listing,
): LocalListing {
  const place = (name: string) => {
    const refused = pathRefusal(name);
    if (refused || (name !== prefix && !name.startsWith(`${prefix}/`))) {
      throw new ProtocolError(
        `Cannot accept listed name ${JSON.stringify(name)}: ${
          refused?.reason ?? `not under ${JSON.stringify(prefix)}`
        }`,
      );
    }
    return out + name.slice(prefix.length);
  };
  return {
    files: listing.files.map((file) => ({
      name: file.name,
      path: place(file.name),
      size: file.size,
      sha256: file.sha256,
      mtimeMs: file.mtimeMs,
    })),
    dirs: listing.dirs.map((dir) => ({
      name: dir.name,
      path: place(dir.name),
      mode: dir.mode,
      mtimeMs: dir.mtimeMs,
    })),
  };
}

/** Whether `file` is already at its local path: same size and mtime, then same SHA-256. */
async function holdsLocally(file: ListedFile): Promise<boolean> {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(file.path); // Sync: a tree asks this of every file.
  } catch {
    return false;
  }
  return info.isFile && info.size === file.size &&
    info.mtime?.getTime() === file.mtimeMs &&
    await hashFile(file.path) === file.sha256;
}
