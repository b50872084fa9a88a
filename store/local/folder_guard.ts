/**
 * Keeping every name inside the server's folder: no symbolic link is ever
 * followed on the way to a stored file, and folders on the way are checked
 * (and made) before anything is written. Names are relative paths
 * (`photos/2024/a.jpg`) that already passed `pathRefusal`.
 *
 * @module
 */

import { ERROR_CODE, type Refusal, refusal } from "../../base/errors.ts";
import {
  parentsOf,
  PART_SUFFIX,
  STATE_SUFFIX,
  STATE_TEMP_SUFFIX,
} from "../../protocol/names.ts";

/** How long a folder listing taken by {@linkcode FolderGuard.inspect} is trusted. */
const LISTING_TTL_MS = 1000;
/** Folder listings (and checked folders) kept at once before they are all dropped. */
const MAX_LISTINGS = 1024;

/** What {@linkcode FolderGuard.inspect} found where a file is to be stored. */
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

/** The folders and links on the way to stored files, under one data folder. */
export class FolderGuard {
  readonly dir: string;
  #listings = new Map<string, { at: number; names: Set<string> }>();
  /** Folders whose whole way was found free of links, by device and inode. */
  #checkedFolders = new Map<string, string>();

  /** A guard of `dir`, which must exist. */
  constructor(dir: string) {
    this.dir = dir;
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
      const refused = this.ensureFolder(parent);
      if (refused) return refused;
    }
    return undefined;
  }

  /** Makes the folder `folder` unless it exists; refuses a link or a file there. */
  ensureFolder(folder: string): Refusal | undefined {
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

  /** Notes that `name` was just stored, so {@linkcode inspect} sees it before its listing expires. */
  noteStored(name: string): void {
    const slash = name.lastIndexOf("/");
    this.#listings.get(slash === -1 ? "" : name.slice(0, slash))?.names.add(
      name.slice(slash + 1),
    );
  }
}

/** `lstat`, or `undefined` when nothing is there. */
export function lstatIfPresent(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** A file's device and inode, or `undefined` where the platform has none. */
export function identity(info: Deno.FileInfo): string | undefined {
  return info.ino === null || info.dev === null
    ? undefined
    : `${info.dev}:${info.ino}`;
}

/** A `bad_name` refusal. */
export function badName(reason: string): Refusal {
  return refusal(ERROR_CODE.badName, reason);
}
