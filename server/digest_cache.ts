/**
 * The digests of stored files, cached in `<dir>/.ftv/digests.json` keyed by
 * name, size and mtime, so a file is hashed once, not on every `get` or
 * `list`.
 *
 * @module
 */

import { type FileEntry, MODE_MASK } from "../protocol.ts";

/** A file's digest as cached, with the size and mtime it was computed for. */
export interface CachedDigest {
  size: number;
  mtimeMs: number;
  sha256: string;
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

  /** The file `name` as `info` describes it, when its digest is cached for that size and mtime. */
  entry(name: string, info: Deno.FileInfo): FileEntry | undefined {
    const mtimeMs = info.mtime?.getTime() ?? 0;
    const cached = this.#cache.get(name);
    if (cached?.size !== info.size || cached.mtimeMs !== mtimeMs) return;
    return { name, ...cached, mode: (info.mode ?? 0o644) & MODE_MASK };
  }

  /**
   * Notes a digest; the cache file is rewritten at most once a second while
   * files keep arriving (rewriting it per file would cost O(n²) for a tree),
   * and by {@linkcode flush} at the end of each session. Losing the last
   * second of it costs only a re-hash.
   */
  remember(name: string, digest: CachedDigest): void {
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
    await this.load();
    await Deno.mkdir(this.#path.slice(0, this.#path.lastIndexOf("/")), {
      recursive: true,
    });
    const temporary = `${this.#path}.${crypto.randomUUID()}.tmp`;
    await Deno.writeTextFile(
      temporary,
      JSON.stringify(Object.fromEntries(this.#cache)),
    );
    await Deno.rename(temporary, this.#path);
  }

  /** Reads the cache file once; a missing or damaged one starts empty. */
  async load(): Promise<void> {
    if (this.#loaded) return;
    this.#loaded = true;
    try {
      const saved = JSON.parse(await Deno.readTextFile(this.#path));
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

function isCachedDigest(value: unknown): value is CachedDigest {
  const v = value as CachedDigest;
  return typeof v === "object" && v !== null && typeof v.size === "number" &&
    typeof v.mtimeMs === "number" && typeof v.sha256 === "string" &&
    /^[0-9a-f]{64}$/.test(v.sha256);
}
