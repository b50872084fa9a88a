/**
 * The stored files of an S3 store: names are keys under the prefix (ftv's
 * own objects live under `PREFIX.ftv/`, a name no ftv name can take), each
 * file's digest is in its metadata (see `object_meta.ts`), folders are the
 * prefixes of keys plus empty marker objects `NAME/` that carry a folder's
 * mode and mtime. A listing pages through the bucket; the metadata a
 * listing does not carry comes from a `HEAD` per object, at most
 * {@linkcode HEADS_AT_ONCE} at a time, remembered by entity tag so the
 * next listing asks again only for what changed. An object put there by
 * another tool (no digest in its metadata) is hashed once and remembered.
 *
 * @module
 */

import type { DirEntry, FileEntry } from "../../protocol.ts";
import { pathRefusal } from "../../protocol/names.ts";
import type { Bucket, Listed, ObjectHead } from "./bucket.ts";
import { entryOf, folderAttributes, storedSha256 } from "./object_meta.ts";
import { hashObject } from "./object_source.ts";

/** HEAD requests a listing sends at once. */
export const HEADS_AT_ONCE = 16;
/** Entries remembered before the memory is cleared. */
const MAX_REMEMBERED = 200_000;

interface Remembered {
  etag: string;
  size: number;
  entry?: FileEntry;
  folder?: { mtimeMs: number; mode: number };
}

/** Names, entries and folders of one bucket prefix; see the module docs. */
export class S3Catalog {
  readonly bucket: Bucket;
  readonly prefix: string;
  #remembered = new Map<string, Remembered>();

  /** The files of `bucket` under `prefix` (`""` or ending in `/`). */
  constructor(bucket: Bucket, prefix: string) {
    this.bucket = bucket;
    this.prefix = prefix;
  }

  /** The key of `name`. */
  keyOf(name: string): string {
    return this.prefix + name;
  }

  /** The entry of the object `head` describes, stored as `name` (hashed once when ftv did not store it). */
  async entryOf(name: string, head: ObjectHead): Promise<FileEntry> {
    const key = this.keyOf(name);
    const known = this.#remembered.get(key);
    if (known?.entry && known.etag === head.etag && known.size === head.size) {
      return known.entry;
    }
    const sha256 = storedSha256(head) ??
      await hashObject(this.bucket, key, head.size);
    const entry = entryOf(name, head, sha256);
    this.#remember(key, { etag: head.etag, size: head.size, entry });
    return entry;
  }

  /** The file `name` with its digest, or `undefined`. */
  async lookup(
    name: string,
  ): Promise<{ entry: FileEntry; head: ObjectHead } | undefined> {
    const head = await this.bucket.head(this.keyOf(name));
    if (!head) return undefined;
    return { entry: await this.entryOf(name, head), head };
  }

  /** Every stored file and folder, or those at and under `prefix`. */
  async listTree(
    prefix?: string,
  ): Promise<{ files: FileEntry[]; dirs: DirEntry[] }> {
    const within = (name: string) =>
      prefix === undefined || name === prefix || name.startsWith(`${prefix}/`);
    const files: Listed[] = [];
    const markers: Listed[] = [];
    const folders = new Map<string, number>(); // Folder name, newest object under it.
    for await (const item of this.bucket.list(this.keyOf(prefix ?? ""))) {
      const name = item.key.slice(this.prefix.length);
      const isMarker = name.endsWith("/");
      const clean = isMarker ? name.slice(0, -1) : name;
      if (!isListable(clean) || !within(clean)) continue;
      (isMarker ? markers : files).push(item);
      const parts = clean.split("/");
      for (let i = isMarker ? parts.length : parts.length - 1; i > 0; i--) {
        const folder = parts.slice(0, i).join("/");
        if (!within(folder)) break;
        folders.set(
          folder,
          Math.max(folders.get(folder) ?? 0, item.lastModifiedMs),
        );
      }
    }
    const entries = await inBatches(files, (item) => this.#fileEntry(item));
    const marked = new Map(
      await inBatches(
        markers,
        async (item) =>
          [
            item.key.slice(this.prefix.length, -1),
            await this.#folder(item),
          ] as const,
      ),
    );
    const dirs: DirEntry[] = [...folders].map(([name, newest]) => ({
      name,
      ...(marked.get(name) ?? { mtimeMs: newest, mode: 0o755 }),
    }));
    return {
      files: entries.filter((entry) => entry !== undefined).sort(byName),
      dirs: dirs.sort(byName),
    };
  }

  async #fileEntry(item: Listed): Promise<FileEntry | undefined> {
    const known = this.#remembered.get(item.key);
    if (known?.entry && known.etag === item.etag && known.size === item.size) {
      return known.entry;
    }
    const head = await this.bucket.head(item.key);
    if (!head) return undefined; // Removed since it was listed.
    return await this.entryOf(item.key.slice(this.prefix.length), head);
  }

  async #folder(item: Listed): Promise<{ mtimeMs: number; mode: number }> {
    const known = this.#remembered.get(item.key);
    if (known?.folder && known.etag === item.etag) return known.folder;
    const folder = folderAttributes(await this.bucket.head(item.key));
    this.#remember(item.key, { etag: item.etag, size: 0, folder });
    return folder;
  }

  /** Forgets what was remembered of `name` (it was just replaced). */
  forget(name: string): void {
    this.#remembered.delete(this.keyOf(name));
  }

  #remember(key: string, value: Remembered): void {
    if (this.#remembered.size >= MAX_REMEMBERED) this.#remembered.clear();
    this.#remembered.set(key, value);
  }
}

/** Whether a name found in the bucket is one ftv lists (a legal name, not ftv's own). */
function isListable(name: string): boolean {
  return name !== "" && pathRefusal(name) === undefined;
}

/** `task` of every item, {@linkcode HEADS_AT_ONCE} at a time, in order. */
async function inBatches<T, R>(
  items: readonly T[],
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await task(items[i]!);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(HEADS_AT_ONCE, items.length) }, worker),
  );
  return results;
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
