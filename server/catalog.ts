/**
 * The files a server holds under its data folder, with their SHA-256 digests
 * cached in `<dir>/.ftv/digests.json` (keyed by name, size and mtime) so a
 * file is hashed once, not on every `get` or `list`. Names are relative
 * paths (`photos/2024/a.jpg`); no symbolic link is ever followed on the way
 * to one.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { hashOpenFile } from "../engine/digest.ts";
import { ERROR_CODE, type Refusal, refusal } from "../base/errors.ts";
import { DigestCache } from "./digest_cache.ts";
import {
  META_DIR,
  nameRefusal,
  parentsOf,
  PART_SUFFIX,
  STATE_SUFFIX,
  STATE_TEMP_SUFFIX,
} from "../protocol/names.ts";
import { type DirEntry, type FileEntry, MODE_MASK } from "../protocol.ts";
import { writeWhole } from "../engine/atomic_file.ts";

/** How long the total of stored bytes is trusted before the folder is walked again. */
const TOTAL_TTL_MS = 1000;
/** How long a folder listing taken by {@linkcode Catalog.inspect} is trusted. */
const LISTING_TTL_MS = 1000;
/** Folder listings (and checked folders) kept at once before they are all dropped. */
const MAX_LISTINGS = 1024;
/** Most nested folders walked by `list`, so a pathological tree cannot recurse forever. */
const MAX_WALK_DEPTH = 64;

/** What {@linkcode Catalog.readSmall} found. */
export type SmallRead =
  | { kind: "refused"; refusal: Refusal }
  | { kind: "missing" }
  /** Larger than asked for, or changed size while read. */
  | { kind: "tooLarge" }
  | { kind: "ok"; entry: FileEntry; bytes: Uint8Array };

/** What {@linkcode Catalog.inspect} found where a file is to be stored. */
export type Inspection =
  | { kind: "refused"; refusal: Refusal }
  /**
   * `stored`: the file already there, if any; `leftovers`: a part or state
   * file exists beside it; `parentsExist`: every folder on the way does.
   */
  | {
    kind: "ok";
    stored: Deno.FileInfo | undefined;
    leftovers: boolean;
    parentsExist: boolean;
  };

/** Mode and times a stored file or folder gets. */
export interface Attributes {
  /** Permission bits; masked with {@linkcode MODE_MASK}. */
  mode?: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
}

/** A server's stored files. */
export class Catalog {
  readonly dir: string;
  #digests: DigestCache;
  #listings = new Map<string, { at: number; names: Set<string> }>();
  /** Folders whose whole way was found free of links, by device and inode. */
  #checkedFolders = new Map<string, string>();
  #total: { at: number; bytes: number } | undefined;

  /** A catalog of `dir`, which must exist. */
  constructor(dir: string) {
    this.dir = dir;
    this.#digests = new DigestCache(`${dir}/${META_DIR}`);
  }

  /** The path where `name` is stored. */
  pathOf(name: string): string {
    return `${this.dir}/${name}`;
  }

  /**
   * Why a folder on the way to `name` may not be used: it is a symbolic link
   * (which could lead out of the folder) or not a folder at all. Synchronous:
   * a metadata call costs ~3 µs here, its async form ~12 µs or more, and this runs
   * for every file of a tree.
   */
  parentRefusal(name: string): Refusal | undefined {
    const parents = this.#checkParents(name);
    return "refusal" in parents ? parents.refusal : undefined;
  }

  /**
   * What {@linkcode parentRefusal} finds, and whether every folder on the way
   * exists. A folder whose whole way was checked is remembered by device and
   * inode, so the next file in it costs one `lstat` of that folder instead of
   * one per level: a link swapped in at any level shows there as a link or
   * as another inode, and the whole way is checked again (the same inode
   * behind a new link is the checked folder itself, moved by someone who can
   * write where it went).
   */
  #checkParents(name: string): { refusal: Refusal } | { exist: boolean } {
    const slash = name.lastIndexOf("/");
    if (slash === -1) return { exist: true };
    const folder = name.slice(0, slash);
    const known = this.#checkedFolders.get(folder);
    if (known !== undefined) {
      const info = lstatIfPresent(this.pathOf(folder));
      if (info?.isDirectory && identity(info) === known) return { exist: true };
      this.#checkedFolders.delete(folder);
    }
    let info: Deno.FileInfo | undefined;
    for (const parent of parentsOf(name)) {
      info = lstatIfPresent(this.pathOf(parent));
      if (info === undefined) return { exist: false };
      if (info.isSymlink) {
        return {
          refusal: badName(`${JSON.stringify(parent)} is a symbolic link`),
        };
      }
      if (!info.isDirectory) {
        return {
          refusal: badName(`${JSON.stringify(parent)} is not a folder`),
        };
      }
    }
    const checked = info && identity(info);
    if (checked !== undefined) {
      if (this.#checkedFolders.size >= MAX_LISTINGS) {
        this.#checkedFolders.clear();
      }
      this.#checkedFolders.set(folder, checked);
    }
    return { exist: true };
  }

  /**
   * Creates the folders on the way to `name` that are missing, refusing to
   * pass through a symbolic link; the refusal, or `undefined` when done.
   */
  makeParents(name: string): Refusal | undefined {
    for (const parent of parentsOf(name)) {
      const refused = this.#ensureFolder(parent);
      if (refused) return refused;
    }
    return undefined;
  }

  #ensureFolder(folder: string): Refusal | undefined {
    const path = this.pathOf(folder);
    let info = lstatIfPresent(path);
    if (info === undefined) {
      try {
        Deno.mkdirSync(path);
        this.#listings.set(folder, { at: performance.now(), names: new Set() });
        return undefined;
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
        info = Deno.lstatSync(path);
      }
    }
    if (info.isSymlink) {
      return badName(`${JSON.stringify(folder)} is a symbolic link`);
    }
    if (!info.isDirectory) {
      return badName(`${JSON.stringify(folder)} is not a folder`);
    }
    return undefined;
  }

  /**
   * Why `name` may not be used even though it is well-formed: a folder on the
   * way is a symbolic link, or the file, its part file, its state or the
   * state's temporary is one, which could lead a write or a read out of the
   * folder. `undefined` when it may.
   */
  async linkRefusal(name: string): Promise<Refusal | undefined> {
    const parent = this.parentRefusal(name);
    if (parent) return parent;
    for (const suffix of ["", PART_SUFFIX, STATE_SUFFIX, STATE_TEMP_SUFFIX]) {
      try {
        if ((await Deno.lstat(this.pathOf(name + suffix))).isSymlink) {
          return badName(`${JSON.stringify(name + suffix)} is a symbolic link`);
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    return undefined;
  }

  /**
   * {@linkcode linkRefusal} for the many small files of a tree, without a
   * failing `lstat` per missing file (each costs ~16 µs): which names exist
   * comes from one listing of the folder, trusted for a second. Writes stay
   * safe without it: {@linkcode storeWhole} creates its part file with
   * `O_EXCL` and renames, neither of which follows a link.
   */
  inspect(name: string): Inspection {
    const parents = this.#checkParents(name);
    if ("refusal" in parents) return { kind: "refused", ...parents };
    if (!parents.exist) {
      return {
        kind: "ok",
        stored: undefined,
        leftovers: false,
        parentsExist: false,
      };
    }
    const slash = name.lastIndexOf("/");
    const base = name.slice(slash + 1);
    const names = this.#namesIn(slash === -1 ? "" : name.slice(0, slash));
    const leftovers = names.has(base + PART_SUFFIX) ||
      names.has(base + STATE_SUFFIX) || names.has(base + STATE_TEMP_SUFFIX);
    if (!names.has(base)) {
      return { kind: "ok", stored: undefined, leftovers, parentsExist: true };
    }
    const stored = lstatIfPresent(this.pathOf(name));
    if (stored?.isSymlink) {
      return {
        kind: "refused",
        refusal: badName(`${JSON.stringify(name)} is a symbolic link`),
      };
    }
    if (stored !== undefined && !stored.isFile) {
      return {
        kind: "refused",
        refusal: badName(`${JSON.stringify(name)} is a folder`),
      };
    }
    return { kind: "ok", stored, leftovers, parentsExist: true };
  }

  #namesIn(folder: string): Set<string> {
    const now = performance.now();
    const cached = this.#listings.get(folder);
    if (cached && now - cached.at < LISTING_TTL_MS) return cached.names;
    if (this.#listings.size >= MAX_LISTINGS) this.#listings.clear();
    const names = new Set<string>();
    try {
      for (const entry of Deno.readDirSync(this.pathOf(folder))) {
        names.add(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    this.#listings.set(folder, { at: now, names });
    return names;
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
      mode: (attributes.mode ?? 0o644) & MODE_MASK,
      mtimeMs: attributes.mtimeMs,
      fsync: attributes.fsync,
    });
    if (!written.ok) return written.refusal;
    const slash = name.lastIndexOf("/");
    this.#listings.get(slash === -1 ? "" : name.slice(0, slash))?.names.add(
      name.slice(slash + 1),
    );
    this.#digests.remember(name, written.value, sha256);
    if (this.#total) this.#total.bytes += bytes.length;
    return undefined;
  }

  /**
   * Creates the folder `name` (and those on the way) unless it exists, and
   * sets its mode and mtime; the refusal, or `undefined` when done.
   */
  makeFolder(name: string, attributes: Attributes): Refusal | undefined {
    const refused = this.makeParents(name) ?? this.#ensureFolder(name);
    if (refused) return refused;
    const path = this.pathOf(name);
    if (attributes.mode !== undefined) {
      Deno.chmodSync(path, attributes.mode & MODE_MASK);
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
    await this.#walk("", 0, (_name, info) => {
      if (info.isFile) bytes += info.size;
    }, true);
    this.#total = { at: now, bytes };
    return bytes;
  }

  /** Writes the digest cache if anything changed since it was last written. */
  flush(): Promise<void> {
    return this.#digests.flush();
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
      await this.#walk("", 0, visit, false);
    } else if (this.parentRefusal(prefix) === undefined) {
      let info: Deno.FileInfo | undefined;
      try {
        info = await Deno.lstat(this.pathOf(prefix));
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
      if (info && !info.isSymlink) {
        await visit(prefix, info);
        if (info.isDirectory) await this.#walk(prefix, 1, visit, false);
      }
    }
    return { files: files.sort(byName), dirs: dirs.sort(byName) };
  }

  /**
   * Calls `visit` for each entry under `folder`, depth first, never through
   * a link; `all` includes part files and entries with reserved names.
   */
  async #walk(
    folder: string,
    depth: number,
    visit: (name: string, info: Deno.FileInfo) => void | Promise<void>,
    all: boolean,
  ): Promise<void> {
    if (depth > MAX_WALK_DEPTH) return;
    const path = folder === "" ? this.dir : this.pathOf(folder);
    const items: Deno.DirEntry[] = [];
    try {
      for await (const item of Deno.readDir(path)) items.push(item);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    for (const item of items) {
      if (item.isSymlink || (!all && nameRefusal(item.name))) continue;
      if (folder === "" && item.name === META_DIR) continue;
      const name = folder === "" ? item.name : `${folder}/${item.name}`;
      let info: Deno.FileInfo;
      try {
        // Sync: a listing asks this of every file, and each async call
        // costs more than the call itself.
        info = Deno.lstatSync(this.pathOf(name));
      } catch {
        continue; // Removed meanwhile.
      }
      await visit(name, info);
      if (info.isDirectory) await this.#walk(name, depth + 1, visit, all);
    }
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
  async recheck(name: string): Promise<Recheck> {
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
    if (cached === undefined || cached.sha256 === actual) {
      this.#digests.remember(name, info, actual);
      return { kind: cached === undefined ? "new" : "intact", sha256: actual };
    }
    this.#digests.markDamaged(name, info, actual);
    return { kind: "damaged", expected: cached.sha256, actual };
  }
}

/** What {@linkcode Catalog.recheck} found. */
export type Recheck =
  | { kind: "intact" | "new"; sha256: string }
  | { kind: "damaged"; expected: string; actual: string }
  | { kind: "missing" };

/** The refusal of a file whose bytes no longer match the digest it was stored with. */
export function damagedRefusal(expected: string): Refusal {
  return refusal(
    ERROR_CODE.damaged,
    `the stored copy is damaged (its bytes no longer have SHA-256 ${expected}); send it again to repair it`,
  );
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function lstatIfPresent(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** A folder's device and inode, or `undefined` where the platform has none. */
function identity(info: Deno.FileInfo): string | undefined {
  return info.ino === null || info.dev === null
    ? undefined
    : `${info.dev}:${info.ino}`;
}

function badName(reason: string): Refusal {
  return refusal(ERROR_CODE.badName, reason);
}
