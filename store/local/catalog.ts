/**
 * The files a server holds under its data folder, with their SHA-256 digests
 * (see `digest_cache.ts`), so a file is hashed once, not on every `get` or
 * `list`. Names are relative paths (`photos/2024/a.jpg`); no symbolic link
 * is ever followed on the way to one (see `folder_guard.ts`).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { hashOpenFile } from "../../engine/digest.ts";
import { receivedMode } from "../../engine/file_mode.ts";
import { ERROR_CODE, type Refusal, refusal } from "../../base/errors.ts";
import { DigestCache } from "./digest_cache.ts";
import {
  META_DIR,
  PART_SUFFIX,
  STATE_SUFFIX,
  STATE_TEMP_SUFFIX,
} from "../../protocol/names.ts";
import {
  badName,
  FolderGuard,
  identity,
  type Inspection,
  lstatIfPresent,
} from "./folder_guard.ts";
import { walkStore } from "./store_walk.ts";

export type { Inspection };
import { type DirEntry, type FileEntry, MODE_MASK } from "../../protocol.ts";
import { writeWhole } from "../../engine/atomic_file.ts";
import {
  type Attributes,
  damagedRefusal,
  type Recheck,
  type SmallRead,
} from "../interface.ts";

/** How long the total of stored bytes is trusted before the folder is walked again. */
const TOTAL_TTL_MS = 1000;

/** A server's stored files. */
export class Catalog {
  readonly dir: string;
  #digests: DigestCache;
  #guard: FolderGuard;
  #total: { at: number; bytes: number } | undefined;

  /** A catalog of `dir`, which must exist. */
  constructor(dir: string) {
    this.dir = dir;
    this.#digests = new DigestCache(`${dir}/${META_DIR}`);
    this.#guard = new FolderGuard(dir);
  }

  /** The path where `name` is stored. */
  pathOf(name: string): string {
    return `${this.dir}/${name}`;
  }
  /** Why a folder on the way to `name` may not be used; see {@linkcode FolderGuard.parentRefusal}. */
  parentRefusal(name: string): Refusal | undefined {
    return this.#guard.parentRefusal(name);
  }

  /** Makes the folders on the way to `name`; see {@linkcode FolderGuard.makeParents}. */
  makeParents(name: string): Refusal | undefined {
    return this.#guard.makeParents(name);
  }

  /** Why `name` may not be used (links on the way); see {@linkcode FolderGuard.linkRefusal}. */
  linkRefusal(name: string): Promise<Refusal | undefined> {
    return this.#guard.linkRefusal(name);
  }

  /** What is where `name` is to be stored; see {@linkcode FolderGuard.inspect}. */
  inspect(name: string): Inspection {
    return this.#guard.inspect(name);
  }

  /**
   * Stores a whole small file at once: creates the folders on the way
   * (unless `parentsExist`, as {@linkcode inspect} just found),
   * writes `<name>.ftv-part` (created exclusively, so never through a link),
   * sets mode and mtime, syncs when asked, renames it into place and records
   * its digest. Resolves to a refusal (`bad_name`; `busy` when a part
   * file appeared meanwhile; `no_space`), or `undefined` once stored.
   */
  storeWhole(
    name: string,
    bytes: Uint8Array,
    sha256: string,
    attributes: Attributes & { fsync: boolean; parentsExist?: boolean },
  ): Refusal | undefined {
    const refused = attributes.parentsExist
      ? undefined
      : this.makeParents(name);
    if (refused) return refused;
    const written = writeWhole(this.pathOf(name), bytes, {
      mode: attributes.mode ?? 0o644,
      mtimeMs: attributes.mtimeMs,
      fsync: attributes.fsync,
    });
    if (!written.ok) return written.refusal;
    this.#guard.noteStored(name);
    this.#digests.remember(name, written.value, sha256);
    if (this.#total) this.#total.bytes += bytes.length;
    return undefined;
  }

  /**
   * Creates the folder `name` (and those on the way) unless it exists, and
   * sets its mode and mtime; the refusal, or `undefined` when done.
   */
  makeFolder(name: string, attributes: Attributes): Refusal | undefined {
    const refused = this.makeParents(name) ?? this.#guard.ensureFolder(name);
    if (refused) return refused;
    const path = this.pathOf(name);
    if (attributes.mode !== undefined) {
      Deno.chmodSync(path, receivedMode(attributes.mode, this.dir));
    }
    Deno.utimeSync(path, new Date(), new Date(attributes.mtimeMs));
    return undefined;
  }

  /**
   * Bytes taken by every stored file and part file. The folder is walked at
   * most once a second (once per file would cost O(n²) for a tree); files
   * stored meanwhile are added, so the figure never runs low.
   */
  async totalBytes(): Promise<number> {
    const now = performance.now();
    if (this.#total && now - this.#total.at < TOTAL_TTL_MS) {
      return this.#total.bytes;
    }
    let bytes = 0;
    await walkStore(this.dir, (_name, info) => {
      if (info.isFile) bytes += info.size;
    }, { all: true });
    this.#total = { at: now, bytes };
    return bytes;
  }

  /** Writes the digest cache if anything changed since it was last written. */
  flush(): Promise<void> {
    return this.#digests.flush();
  }

  /** The names of every stored file, without hashing any. */
  async fileNames(): Promise<string[]> {
    const names: string[] = [];
    await walkStore(this.dir, (name, info) => {
      if (info.isFile) names.push(name);
    }, { all: false });
    return names.sort();
  }

  /**
   * What transfers leave beside stored files (part files, resume states and
   * their temporaries) and ftv's own temporary files, with their stats.
   */
  async leftovers(): Promise<{ path: string; info: Deno.FileInfo }[]> {
    const found: { path: string; info: Deno.FileInfo }[] = [];
    await walkStore(this.dir, (name, info) => {
      if (info.isFile && isLeftover(name)) {
        found.push({ path: this.pathOf(name), info });
      }
    }, { all: true });
    try {
      for await (const item of Deno.readDir(`${this.dir}/${META_DIR}`)) {
        if (!item.isFile || !item.name.endsWith(".tmp")) continue;
        const path = `${this.dir}/${META_DIR}/${item.name}`;
        const info = lstatIfPresent(path);
        if (info) found.push({ path, info });
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return found;
  }

  /** Every stored file, by name. */
  async list(): Promise<FileEntry[]> {
    return (await this.listTree()).files;
  }

  /**
   * Every stored file and folder, by name, or only `prefix` and what lies
   * under it. Part and state files, ftv's own folder and links are left out.
   */
  async listTree(
    prefix?: string,
  ): Promise<{ files: FileEntry[]; dirs: DirEntry[] }> {
    const files: FileEntry[] = [];
    const dirs: DirEntry[] = [];
    const visit = async (name: string, info: Deno.FileInfo) => {
      if (info.isDirectory) {
        dirs.push({
          name,
          mtimeMs: info.mtime?.getTime() ?? 0,
          mode: (info.mode ?? 0o755) & MODE_MASK,
        });
      } else if (info.isFile) {
        const entry = this.#digests.entry(name, info) ??
          await this.lookup(name);
        if (entry) files.push(entry);
      }
    };
    await this.#digests.load();
    if (prefix === undefined) {
      await walkStore(this.dir, visit, { all: false });
    } else if (this.parentRefusal(prefix) === undefined) {
      let info: Deno.FileInfo | undefined;
      try {
        info = await Deno.lstat(this.pathOf(prefix));
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      if (info && !info.isSymlink) {
        await visit(prefix, info);
        if (info.isDirectory) {
          await walkStore(this.dir, visit, { all: false, under: prefix });
        }
      }
    }
    return { files: files.sort(byName), dirs: dirs.sort(byName) };
  }

  /**
   * A stored file of at most `maxBytes`, read whole for an eager get with
   * synchronous calls (each async one costs more than such a file): the
   * checks of {@linkcode inspect}, then the bytes read through a handle whose
   * device and inode are the ones checked, so a link swapped in meanwhile
   * is refused rather than followed. The digest comes from the cache, or from
   * the bytes.
   */
  async readSmall(name: string, maxBytes: number): Promise<SmallRead> {
    await this.#digests.load();
    const found = this.inspect(name);
    if (found.kind === "refused") return found;
    // The folder's listing may be up to a second old: look again before
    // calling a file missing.
    const checked = found.stored ?? lstatIfPresent(this.pathOf(name));
    if (checked === undefined) return { kind: "missing" };
    if (!checked.isFile) {
      return {
        kind: "refused",
        refusal: badName(`${JSON.stringify(name)} is not a plain file`),
      };
    }
    if (checked.size > maxBytes) return { kind: "tooLarge" };
    using file = Deno.openSync(this.pathOf(name), { read: true });
    const info = file.statSync();
    if (identity(info) !== identity(checked) || info.size > maxBytes) {
      return {
        kind: "refused",
        refusal: refusal(
          ERROR_CODE.busy,
          `${JSON.stringify(name)} changed while being read`,
        ),
      };
    }
    const bytes = new Uint8Array(info.size);
    for (let filled = 0; filled < bytes.length;) {
      const got = file.readSync(bytes.subarray(filled));
      if (got === null) return { kind: "tooLarge" }; // Shrank: not one whole read.
      filled += got;
    }
    // A small file costs little to hash: its bytes are checked on every read.
    const actual = createHash("sha256").update(bytes).digest("hex");
    const cached = this.#digests.cached(name, info);
    if (cached === undefined) this.#digests.remember(name, info, actual);
    else if (cached.sha256 !== actual) {
      this.#digests.markDamaged(name, info, actual);
      return {
        kind: "refused",
        refusal: damagedRefusal(cached.sha256),
      };
    }
    return { kind: "ok", entry: this.#digests.entry(name, info)!, bytes };
  }

  /** The stored file `name` with its digest, or `undefined` when absent. */
  async lookup(name: string): Promise<FileEntry | undefined> {
    const opened = await this.open(name);
    if (opened === undefined) return undefined;
    opened.file.close();
    return opened.entry;
  }

  /**
   * Opens the stored file `name` for reading, with its entry (digest from
   * the cache, or hashed now through the open handle); `undefined` when it
   * is absent or not a plain file. The caller closes the file. Call
   * {@linkcode linkRefusal} first: this opens the path as it is.
   */
  async open(
    name: string,
  ): Promise<{ file: Deno.FsFile; entry: FileEntry } | undefined> {
    await this.#digests.load();
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.pathOf(name), { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    try {
      const info = await file.stat();
      if (!info.isFile) {
        file.close();
        return undefined;
      }
      let entry = this.#digests.entry(name, info);
      if (entry === undefined) {
        this.#digests.remember(name, info, await hashOpenFile(file));
        entry = this.#digests.entry(name, info)!;
        await file.seek(0, Deno.SeekMode.Start);
      }
      return { file, entry };
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /**
   * Records the digest of a file just stored (`info`: its stat as it was
   * renamed into place), so it is never hashed again.
   */
  async record(
    name: string,
    sha256: string,
    info: Deno.FileInfo,
  ): Promise<void> {
    await this.#digests.load();
    this.#digests.remember(name, info, sha256);
    if (this.#total) this.#total.bytes += info.size;
  }

  /**
   * Hashes the stored file `name` again and compares it with the digest it
   * was stored with: `intact` (now confirmed), `damaged` (marked so: never
   * served as verified until it is sent again), `new` (no digest was known
   * for this file: hashed and recorded), or `missing`.
   */
  async recheck(name: string, storedAs?: string): Promise<Recheck> {
    await this.#digests.load();
    let file: Deno.FsFile;
    try {
      file = await Deno.open(this.pathOf(name), { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return { kind: "missing" };
      throw error;
    }
    using opened = file;
    const info = await opened.stat();
    if (!info.isFile) return { kind: "missing" };
    const cached = this.#digests.cached(name, info);
    const actual = await hashOpenFile(opened);
    if (storedAs !== undefined && actual === storedAs) {
      // Repaired in place: the bytes are back to the digest they were stored with.
      this.#digests.remember(name, info, actual);
      return { kind: "intact", sha256: actual, size: info.size };
    }
    if (cached === undefined || cached.sha256 === actual) {
      this.#digests.remember(name, info, actual);
      return {
        kind: cached === undefined ? "new" : "intact",
        sha256: actual,
        size: info.size,
      };
    }
    this.#digests.markDamaged(name, info, actual);
    return {
      kind: "damaged",
      expected: cached.sha256,
      actual,
      size: info.size,
    };
  }
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function isLeftover(name: string): boolean {
  return name.endsWith(PART_SUFFIX) || name.endsWith(STATE_SUFFIX) ||
    name.endsWith(STATE_TEMP_SUFFIX);
}
