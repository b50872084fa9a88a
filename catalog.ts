/**
 * The files a server holds under its data folder, with their SHA-256 digests
 * cached in `<dir>/.ftv/digests.json` (keyed by name, size and mtime) so a
 * file is hashed once, not on every `get` or `list`.
 *
 * @module
 */

import { hashFile } from "./digest.ts";
import {
  META_DIR,
  nameProblem,
  PART_SUFFIX,
  STATE_SUFFIX,
  STATE_TEMP_SUFFIX,
} from "./names.ts";
import type { FileEntry } from "./protocol.ts";

interface CachedDigest {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** A server's stored files. */
export class Catalog {
  readonly dir: string;
  #cache = new Map<string, CachedDigest>();
  #cachePath: string;
  #loaded = false;

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
   * Why `name` may not be used even though it is well-formed: the file, its
   * part file, its state or the state's temporary is a symbolic link, which
   * could lead a write or a read out of the folder. `undefined` when it may.
   */
  async linkProblem(name: string): Promise<string | undefined> {
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

  /** Bytes taken by every stored file and part file. */
  async totalBytes(): Promise<number> {
    let total = 0;
    for await (const item of Deno.readDir(this.dir)) {
      if (!item.isFile) continue;
      try {
        total += (await Deno.stat(this.pathOf(item.name))).size;
      } catch {
        // Removed meanwhile.
      }
    }
    return total;
  }

  /** Every stored file, by name. */
  async list(): Promise<FileEntry[]> {
    const entries: FileEntry[] = [];
    for await (const item of Deno.readDir(this.dir)) {
      if (!item.isFile || nameProblem(item.name)) continue;
      const entry = await this.lookup(item.name);
      if (entry) entries.push(entry);
    }
    return entries.sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0
    );
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
    const mtimeMs = info.mtime?.getTime() ?? 0;
    const cached = this.#cache.get(name);
    if (cached && cached.size === info.size && cached.mtimeMs === mtimeMs) {
      return { name, ...cached };
    }
    const sha256 = await hashFile(this.pathOf(name));
    await this.#remember(name, { size: info.size, mtimeMs, sha256 });
    return { name, size: info.size, sha256, mtimeMs };
  }

  /** Records the digest of a file just stored, so it is never hashed again. */
  async record(name: string, sha256: string): Promise<void> {
    await this.#load();
    const info = await Deno.stat(this.pathOf(name));
    await this.#remember(name, {
      size: info.size,
      mtimeMs: info.mtime?.getTime() ?? 0,
      sha256,
    });
  }

  async #remember(name: string, digest: CachedDigest): Promise<void> {
    this.#cache.set(name, digest);
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
        if (isCachedDigest(digest)) this.#cache.set(name, digest);
      }
    } catch {
      // No cache yet, or a damaged one: digests are computed again.
    }
  }
}

function isCachedDigest(value: unknown): value is CachedDigest {
  const v = value as CachedDigest;
  return typeof v === "object" && v !== null && typeof v.size === "number" &&
    typeof v.mtimeMs === "number" && typeof v.sha256 === "string" &&
    /^[0-9a-f]{64}$/.test(v.sha256);
}
