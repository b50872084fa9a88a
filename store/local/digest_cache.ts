/**
 * The digests of stored files, cached in `<dir>/.ftv/digests.json`, so a
 * file is hashed once, not on every `get` or `list`. An entry is trusted
 * only for the file it was computed for: same size, mtime and inode (a file
 * another process put in place is a new inode). Each entry records when its
 * digest was last confirmed by hashing the bytes, and whether a later hash
 * found other bytes (the file is then damaged: never served as verified).
 *
 * @module
 */

import { removeIfPresent } from "../../engine/atomic_file.ts";
import { type FileEntry, MODE_MASK } from "../../protocol.ts";

/** A file's digest as cached, with what identifies the file it was computed for. */
export interface CachedDigest {
  /** Size in bytes. */
  size: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
  /** Inode, where the platform has one. */
  ino?: number;
  /** The digest the file was received (or first hashed) with. */
  sha256: string;
  /** When hashing the bytes last gave `sha256`, ms since the epoch. */
  confirmedAt: number;
  /** Set when hashing the same file gave another digest: the bytes rotted. */
  damaged?: { sha256: string; foundAt: number };
  /** When this entry last changed, so processes sharing a store keep the newest. */
  updatedAt: number;
}

/** The cache file is written at most this often while files keep arriving. */
const SAVE_INTERVAL_MS = 1000;

/** Stored files' digests, loaded lazily and saved in the background. */
export class DigestCache {
  #cache = new Map<string, CachedDigest>();
  #path: string;
  #loaded = false;
  #dirty = false;
  #lastSave = -Infinity;
  #saving: Promise<void> = Promise.resolve();

  /** The cache kept in the folder `metaDir`. */
  constructor(metaDir: string) {
    this.#path = `${metaDir}/digests.json`;
  }

  /** The cached entry of `name`, when it was computed for the file `info` describes. */
  cached(name: string, info: Deno.FileInfo): CachedDigest | undefined {
    const cached = this.#cache.get(name);
    if (
      cached === undefined || cached.size !== info.size ||
      cached.mtimeMs !== (info.mtime?.getTime() ?? 0) ||
      (cached.ino !== undefined && info.ino !== null && cached.ino !== info.ino)
    ) {
      return undefined;
    }
    return cached;
  }

  /** The file `name` as `info` describes it, when its digest is cached for that file. */
  entry(name: string, info: Deno.FileInfo): FileEntry | undefined {
    const cached = this.cached(name, info);
    if (cached === undefined) return undefined;
    return {
      name,
      size: cached.size,
      sha256: cached.sha256,
      mtimeMs: cached.mtimeMs,
      mode: (info.mode ?? 0o644) & MODE_MASK,
      ...(cached.damaged ? { damaged: true } : {}),
    };
  }

  /**
   * Notes that the file `info` describes has `sha256`, confirmed now. The
   * cache file is rewritten at most once a second while files keep arriving
   * (rewriting it per file would cost O(n²) for a tree), and by
   * {@linkcode flush} at the end of each session. Losing the last second of
   * it costs only a re-hash.
   */
  remember(name: string, info: Deno.FileInfo, sha256: string): void {
    const now = Date.now();
    this.#set(name, {
      size: info.size,
      mtimeMs: info.mtime?.getTime() ?? 0,
      ...(info.ino === null ? {} : { ino: info.ino }),
      sha256,
      confirmedAt: now,
      updatedAt: now,
    });
  }

  /** Notes that hashing `name` again gave `actual`, not its digest: it is damaged. */
  markDamaged(name: string, info: Deno.FileInfo, actual: string): void {
    const cached = this.cached(name, info);
    if (cached === undefined) return;
    const now = Date.now();
    this.#set(name, {
      ...cached,
      damaged: { sha256: actual, foundAt: now },
      updatedAt: now,
    });
  }

  #set(name: string, digest: CachedDigest): void {
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

  /**
   * Writes the cache, merged with what another process sharing the store
   * saved meanwhile (the newer entry of each name wins), through a
   * temporary file that is removed if the write fails.
   */
  async #save(): Promise<void> {
    if (!this.#dirty) return;
    this.#dirty = false;
    this.#lastSave = performance.now();
    await this.load();
    for (const [name, saved] of await readCache(this.#path)) {
      const mine = this.#cache.get(name);
      if (mine === undefined || mine.updatedAt < saved.updatedAt) {
        this.#cache.set(name, saved);
      }
    }
    await Deno.mkdir(this.#path.slice(0, this.#path.lastIndexOf("/")), {
      recursive: true,
    });
    const temporary = `${this.#path}.${crypto.randomUUID()}.tmp`;
    try {
      await Deno.writeTextFile(
        temporary,
        JSON.stringify(Object.fromEntries(this.#cache)),
      );
      await Deno.rename(temporary, this.#path);
    } catch (error) {
      this.#dirty = true;
      await removeIfPresent(temporary).catch(() => undefined);
      throw error;
    }
  }

  /** Reads the cache file once; a missing or damaged one starts empty. */
  async load(): Promise<void> {
    if (this.#loaded) return;
    this.#loaded = true;
    for (const [name, digest] of await readCache(this.#path)) {
      if (!this.#cache.has(name)) this.#cache.set(name, digest);
    }
  }
}

/** The entries of a cache file; none when it is missing or damaged. */
async function readCache(path: string): Promise<[string, CachedDigest][]> {
  try {
    const saved = JSON.parse(await Deno.readTextFile(path));
    return Object.entries(saved).filter((entry): entry is [
      string,
      CachedDigest,
    ] => isCachedDigest(entry[1]));
  } catch {
    return []; // No cache yet, or a damaged one: digests are computed again.
  }
}

function isCachedDigest(value: unknown): value is CachedDigest {
  const v = value as CachedDigest;
  return typeof v === "object" && v !== null && typeof v.size === "number" &&
    typeof v.mtimeMs === "number" && typeof v.sha256 === "string" &&
    /^[0-9a-f]{64}$/.test(v.sha256) && typeof v.confirmedAt === "number" &&
    typeof v.updatedAt === "number" &&
    (v.ino === undefined || typeof v.ino === "number");
}
