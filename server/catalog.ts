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
import { writeWhole } from "../engine/chunk_store.ts";
import { hashFile } from "../engine/digest.ts";
import {
  META_DIR,
  nameProblem,
  parentsOf,
  PART_SUFFIX,
  STATE_SUFFIX,
  STATE_TEMP_SUFFIX,
} from "../protocol/names.ts";
import type { DirEntry, FileEntry } from "../protocol.ts";

interface CachedDigest {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** The digest cache is written at most this often while files keep arriving. */
const SAVE_INTERVAL_MS = 1000;
/** How long a folder listing taken by {@linkcode Catalog.inspect} is trusted. */
const LISTING_TTL_MS = 1000;
/** Folder listings (and checked folders) kept at once before they are all dropped. */
const MAX_LISTINGS = 1024;
/** Most nested folders walked by `list`, so a pathological tree cannot recurse forever. */
const MAX_WALK_DEPTH = 64;
/** Permission bits a peer may set; never setuid, setgid or sticky. */
export const MODE_MASK = 0o777;

/** What {@linkcode Catalog.readSmall} found. */
export type SmallRead =
  | { kind: "refused"; problem: string }
  | { kind: "missing" }
  /** Larger than asked for, or changed size while read. */
  | { kind: "tooLarge" }
  | { kind: "ok"; entry: FileEntry; bytes: Uint8Array };

/** What {@linkcode Catalog.inspect} found where a file is to be stored. */
export type Inspection =
  | { kind: "refused"; problem: string }
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
  #cache = new Map<string, CachedDigest>();
  #cachePath: string;
  #loaded = false;
  #dirty = false;
  #lastSave = -Infinity;
  #saving: Promise<void> = Promise.resolve();
  #listings = new Map<string, { at: number; names: Set<string> }>();
  /** Folders whose whole way was found free of links, by device and inode. */
  #checkedFolders = new Map<string, string>();
  #total: { at: number; bytes: number } | undefined;

  /** A catalog of `dir`, which must exist. */
  constructor(dir: string) {
    this.dir = dir;
    this.#cachePath = `${dir}/${META_DIR}/digests.json`;
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
  parentProblem(name: string): string | undefined {
    const parents = this.#checkParents(name);
    return "problem" in parents ? parents.problem : undefined;
  }

  /**
   * What {@linkcode parentProblem} finds, and whether every folder on the way
   * exists. A folder whose whole way was checked is remembered by device and
   * inode, so the next file in it costs one `lstat` of that folder instead of
   * one per level: a link swapped in at any level shows there as a link or
   * as another inode, and the whole way is checked again (the same inode
   * behind a new link is the checked folder itself, moved by someone who can
   * write where it went).
   */
  #checkParents(name: string): { problem: string } | { exist: boolean } {
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
        return { problem: `${JSON.stringify(parent)} is a symbolic link` };
      }
      if (!info.isDirectory) {
        return { problem: `${JSON.stringify(parent)} is not a folder` };
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
   * pass through a symbolic link; the problem, or `undefined` when done.
   */
  makeParents(name: string): string | undefined {
    for (const parent of parentsOf(name)) {
      const problem = this.#ensureFolder(parent);
      if (problem) return problem;
    }
    return undefined;
  }

  #ensureFolder(folder: string): string | undefined {
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
    if (info.isSymlink) return `${JSON.stringify(folder)} is a symbolic link`;
    if (!info.isDirectory) return `${JSON.stringify(folder)} is not a folder`;
    return undefined;
  }

  /**
   * Why `name` may not be used even though it is well-formed: a folder on the
   * way is a symbolic link, or the file, its part file, its state or the
   * state's temporary is one, which could lead a write or a read out of the
   * folder. `undefined` when it may.
   */
  async linkProblem(name: string): Promise<string | undefined> {
    const parent = this.parentProblem(name);
    if (parent) return parent;
    for (const suffix of ["", PART_SUFFIX, STATE_SUFFIX, STATE_TEMP_SUFFIX]) {
      try {
        if ((await Deno.lstat(this.pathOf(name + suffix))).isSymlink) {
          return `${JSON.stringify(name + suffix)} is a symbolic link`;
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
    return undefined;
  }

  /**
   * {@linkcode linkProblem} for the many small files of a tree, without a
   * failing `lstat` per missing file (each costs ~16 µs): which names exist
   * comes from one listing of the folder, trusted for a second. Writes stay
   * safe without it: {@linkcode storeWhole} creates its part file with
   * `O_EXCL` and renames, neither of which follows a link.
   */
  inspect(name: string): Inspection {
    const parents = this.#checkParents(name);
    if ("problem" in parents) return { kind: "refused", ...parents };
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
        problem: `${JSON.stringify(name)} is a symbolic link`,
      };
    }
    if (stored !== undefined && !stored.isFile) {
      return {
        kind: "refused",
        problem: `${JSON.stringify(name)} is a folder`,
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
   * its digest. Resolves to a problem that refuses the name, `"busy"` when
   * a part file appeared meanwhile, or `undefined` once stored.
   */
  storeWhole(
    name: string,
    bytes: Uint8Array,
    sha256: string,
    attributes: Attributes & { fsync: boolean; parentsExist?: boolean },
  ): string | undefined {
    const problem = attributes.parentsExist
      ? undefined
      : this.makeParents(name);
    if (problem) return problem;
    const written = writeWhole(this.pathOf(name), bytes, {
      mode: (attributes.mode ?? 0o644) & MODE_MASK,
      mtimeMs: attributes.mtimeMs,
      fsync: attributes.fsync,
    });
    if (written) return written;
    const slash = name.lastIndexOf("/");
    this.#listings.get(slash === -1 ? "" : name.slice(0, slash))?.names.add(
      name.slice(slash + 1),
    );
    this.#rememberSoon(name, {
      size: bytes.length,
      mtimeMs: attributes.mtimeMs,
      sha256,
    });
    if (this.#total) this.#total.bytes += bytes.length;
    return undefined;
  }

  /**
   * Creates the folder `name` (and those on the way) unless it exists, and
   * sets its mode and mtime; the problem, or `undefined` when done.
   */
  makeFolder(name: string, attributes: Attributes): string | undefined {
    const problem = this.makeParents(name) ?? this.#ensureFolder(name);
    if (problem) return problem;
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
    if (this.#total && now - this.#total.at < SAVE_INTERVAL_MS) {
      return this.#total.bytes;
    }
    let bytes = 0;
    await this.#walk("", 0, (_name, info) => {
      if (info.isFile) bytes += info.size;
    }, true);
    this.#total = { at: now, bytes };
    return bytes;
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
        const entry = this.#cachedEntry(name, info) ?? await this.lookup(name);
        if (entry) files.push(entry);
      }
    };
    await this.#load();
    if (prefix === undefined) {
      await this.#walk("", 0, visit, false);
    } else if (this.parentProblem(prefix) === undefined) {
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
      if (item.isSymlink || (!all && nameProblem(item.name))) continue;
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
    await this.#load();
    const found = this.inspect(name);
    if (found.kind === "refused") return found;
    // The folder's listing may be up to a second old: look again before
    // calling a file missing.
    const checked = found.stored ?? lstatIfPresent(this.pathOf(name));
    if (checked === undefined) return { kind: "missing" };
    if (!checked.isFile) {
      return {
        kind: "refused",
        problem: `${JSON.stringify(name)} is not a plain file`,
      };
    }
    if (checked.size > maxBytes) return { kind: "tooLarge" };
    using file = Deno.openSync(this.pathOf(name), { read: true });
    const info = file.statSync();
    if (identity(info) !== identity(checked) || info.size > maxBytes) {
      return {
        kind: "refused",
        problem: `${JSON.stringify(name)} changed while being read`,
      };
    }
    const bytes = new Uint8Array(info.size);
    for (let filled = 0; filled < bytes.length;) {
      const got = file.readSync(bytes.subarray(filled));
      if (got === null) return { kind: "tooLarge" }; // Shrank: not one whole read.
      filled += got;
    }
    let entry = this.#cachedEntry(name, info);
    if (entry === undefined) {
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      const mtimeMs = info.mtime?.getTime() ?? 0;
      this.#rememberSoon(name, { size: info.size, mtimeMs, sha256 });
      entry = this.#cachedEntry(name, info)!;
    }
    return { kind: "ok", entry, bytes };
  }

  /** The file `name` as `info` describes it, when its digest is cached for that size and mtime. */
  #cachedEntry(name: string, info: Deno.FileInfo): FileEntry | undefined {
    const mtimeMs = info.mtime?.getTime() ?? 0;
    const cached = this.#cache.get(name);
    if (cached?.size !== info.size || cached.mtimeMs !== mtimeMs) return;
    return { name, ...cached, mode: (info.mode ?? 0o644) & MODE_MASK };
  }

  /** The stored file `name` with its digest, or `undefined` when absent. */
  async lookup(name: string): Promise<FileEntry | undefined> {
    await this.#load();
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(this.pathOf(name));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    if (!info.isFile) return undefined;
    const cached = this.#cachedEntry(name, info);
    if (cached) return cached;
    const mtimeMs = info.mtime?.getTime() ?? 0;
    const mode = (info.mode ?? 0o644) & MODE_MASK;
    const sha256 = await hashFile(this.pathOf(name));
    this.#rememberSoon(name, { size: info.size, mtimeMs, sha256 });
    return { name, size: info.size, sha256, mtimeMs, mode };
  }

  /** Records the digest of a file just stored, so it is never hashed again. */
  async record(name: string, sha256: string): Promise<void> {
    await this.#load();
    const info = await Deno.stat(this.pathOf(name));
    this.#rememberSoon(name, {
      size: info.size,
      mtimeMs: info.mtime?.getTime() ?? 0,
      sha256,
    });
    if (this.#total) this.#total.bytes += info.size;
  }

  /**
   * Notes a digest; the cache file is rewritten at most once a second while
   * files keep arriving (rewriting it per file would cost O(n²) for a tree),
   * and by {@linkcode flush} at the end of each session. Losing the last
   * second of it costs only a re-hash.
   */
  #rememberSoon(name: string, digest: CachedDigest): void {
    this.#cache.set(name, digest);
    this.#dirty = true;
    if (performance.now() - this.#lastSave >= SAVE_INTERVAL_MS) {
      this.flush().catch(() => undefined);
    }
  }

  /** Writes the digest cache if anything changed since it was last written. */
  flush(): Promise<void> {
    const run = this.#saving.then(() => this.#save());
    this.#saving = run.catch(() => undefined);
    return run;
  }

  async #save(): Promise<void> {
    if (!this.#dirty) return;
    this.#dirty = false;
    this.#lastSave = performance.now();
    await this.#load();
    await Deno.mkdir(`${this.dir}/${META_DIR}`, { recursive: true });
    const temporary = `${this.#cachePath}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(
      temporary,
      JSON.stringify(Object.fromEntries(this.#cache)),
    );
    await Deno.rename(temporary, this.#cachePath);
  }

  async #load(): Promise<void> {
    if (this.#loaded) return;
    this.#loaded = true;
    try {
      const saved = JSON.parse(await Deno.readTextFile(this.#cachePath));
      for (const [name, digest] of Object.entries(saved)) {
        if (isCachedDigest(digest) && !this.#cache.has(name)) {
          this.#cache.set(name, digest);
        }
      }
    } catch {
      // No cache yet, or a damaged one: digests are computed again.
    }
  }
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

function isCachedDigest(value: unknown): value is CachedDigest {
  const v = value as CachedDigest;
  return typeof v === "object" && v !== null && typeof v.size === "number" &&
    typeof v.mtimeMs === "number" && typeof v.sha256 === "string" &&
    /^[0-9a-f]{64}$/.test(v.sha256);
}
