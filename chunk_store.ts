/**
 * Where a receiver puts chunks: `<name>.ftv-part` plus `<name>.ftv-state`
 * (the manifest and a bitmap of verified chunks). A chunk is marked only after
 * its bytes are written; the state is saved at checkpoints, after the part
 * file is synced, so it never claims a chunk the part file does not hold.
 * Finalising checks the whole-file SHA-256, syncs, renames into place and
 * syncs the folder: nothing partial ever sits under the final name.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { ChunkBitmap } from "./bitmap.ts";
import { PART_SUFFIX, STATE_SUFFIX } from "./names.ts";

/** What identifies the file being received. */
export interface Manifest {
  name: string;
  size: number;
  chunkSize: number;
  /** Modification time of the source, part of the file's identity for resume. */
  mtimeMs: number;
  /** The whole-file digest, when the sender knows it up front. */
  sha256?: string;
}

/** Number of chunks in a file of `size` bytes. */
export function chunkCount(size: number, chunkSize: number): number {
  return Math.ceil(size / chunkSize);
}

/** Byte length of chunk `seq`. */
export function chunkLength(
  seq: number,
  size: number,
  chunkSize: number,
): number {
  return Math.min(chunkSize, size - seq * chunkSize);
}

/** Bytes in the chunks set in `have`. */
export function bytesHeld(
  have: ChunkBitmap,
  size: number,
  chunkSize: number,
): number {
  let bytes = 0;
  for (let seq = 0; seq < have.size; seq++) {
    if (have.has(seq)) bytes += chunkLength(seq, size, chunkSize);
  }
  return bytes;
}

/** Options for {@linkcode ChunkStore.open}. */
export interface ChunkStoreOptions {
  /** Milliseconds between saved checkpoints. @default 1000 */
  checkpointMs?: number;
}

interface SavedState {
  version: 1;
  manifest: Manifest;
  have: string;
}

const STATE_VERSION = 1;

/** A file being received, chunk by chunk, resumable across runs. */
export class ChunkStore {
  /** The final path; nothing is written there before {@linkcode finalize}. */
  readonly path: string;
  readonly partPath: string;
  readonly statePath: string;
  readonly manifest: Manifest;
  /** Chunks verified and written. */
  readonly have: ChunkBitmap;
  /** Chunks already held from an earlier run when the store was opened. */
  readonly resumedChunks: number;
  /** Bytes of those chunks. */
  readonly resumedBytes: number;
  #file: Deno.FsFile;
  #position = 0;
  #queue: Promise<void> = Promise.resolve();
  #failure: unknown;
  #hash: Hash = createHash("sha256");
  #nextToHash = 0;
  #checkpointMs: number;
  #lastCheckpoint = performance.now();
  #closed = false;

  private constructor(
    path: string,
    manifest: Manifest,
    have: ChunkBitmap,
    file: Deno.FsFile,
    options: ChunkStoreOptions,
  ) {
    this.path = path;
    this.partPath = path + PART_SUFFIX;
    this.statePath = path + STATE_SUFFIX;
    this.manifest = manifest;
    this.have = have;
    this.resumedChunks = have.count;
    this.resumedBytes = bytesHeld(have, manifest.size, manifest.chunkSize);
    this.#file = file;
    this.#checkpointMs = options.checkpointMs ?? 1000;
  }

  /**
   * Opens the part file for `path`, resuming from its saved state when that
   * state describes the same file, and starting afresh otherwise.
   */
  static async open(
    path: string,
    manifest: Manifest,
    options: ChunkStoreOptions = {},
  ): Promise<ChunkStore> {
    const count = chunkCount(manifest.size, manifest.chunkSize);
    const saved = await readState(path + STATE_SUFFIX, manifest, count);
    const partSize = await fileSize(path + PART_SUFFIX);
    const resumable = saved !== undefined && partSize !== undefined &&
      partSize <= manifest.size;
    const file = await Deno.open(path + PART_SUFFIX, {
      read: true,
      write: true,
      create: true,
      truncate: !resumable,
    });
    const have = resumable ? saved : new ChunkBitmap(count);
    return new ChunkStore(path, manifest, have, file, options);
  }

  /** Number of chunks in the file. */
  get count(): number {
    return this.have.size;
  }

  /** Expected byte length of chunk `seq`. */
  #length(seq: number): number {
    return chunkLength(seq, this.manifest.size, this.manifest.chunkSize);
  }

  /**
   * Queues a verified chunk for writing; resolves once it is written and
   * marked. Chunks already held are ignored, so a duplicate can never
   * overwrite good bytes.
   */
  accept(seq: number, payload: Uint8Array): Promise<void> {
    if (payload.length !== this.#length(seq)) {
      throw new RangeError(
        `Cannot accept chunk ${seq}: ${payload.length} bytes, expected ${
          this.#length(seq)
        }`,
      );
    }
    return this.#enqueue(async () => {
      if (this.have.has(seq)) return;
      await this.#writeAt(seq * this.manifest.chunkSize, payload);
      this.have.add(seq);
      if (seq === this.#nextToHash) {
        this.#hash.update(payload);
        this.#nextToHash++;
      }
      await this.#hashHeldChunks();
      if (performance.now() - this.#lastCheckpoint >= this.#checkpointMs) {
        await this.#checkpoint();
      }
    });
  }

  /** Waits for every queued write. */
  flush(): Promise<void> {
    return this.#enqueue(() => Promise.resolve());
  }

  /** The SHA-256 (hex) of the whole file; every chunk must be held. */
  digest(): Promise<string> {
    return this.#enqueue(async () => {
      await this.#hashHeldChunks();
      if (this.#nextToHash !== this.count) {
        throw new Error(
          `Cannot compute digest: chunk ${this.#nextToHash} is not held`,
        );
      }
      return this.#hash.digest("hex");
    });
  }

  /** Syncs the part file and saves the state so a later run can resume. */
  checkpoint(): Promise<void> {
    return this.#enqueue(() => this.#checkpoint());
  }

  /** Syncs, renames the part file into place, syncs the folder, drops the state. */
  async finalize(): Promise<void> {
    await this.flush();
    await this.#file.sync();
    this.#close();
    await Deno.rename(this.partPath, this.path);
    await syncFolder(this.path);
    await removeIfPresent(this.statePath);
  }

  /** Closes and deletes the part file and state: the next run starts afresh. */
  async discard(): Promise<void> {
    await this.#settle();
    this.#close();
    await removeIfPresent(this.partPath);
    await removeIfPresent(this.statePath);
  }

  /** Saves a checkpoint and closes, keeping the part file for a later resume. */
  async suspend(): Promise<void> {
    await this.#settle();
    if (this.#closed) return;
    try {
      await this.#checkpoint();
    } finally {
      this.#close();
    }
  }

  /** Runs `task` after everything queued before it; a failure poisons the queue. */
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#failure !== undefined) throw this.#failure;
      return task();
    });
    this.#queue = run.then(
      () => undefined,
      (error) => {
        this.#failure ??= error;
      },
    );
    return run;
  }

  async #settle(): Promise<void> {
    await this.#queue;
  }

  async #hashHeldChunks(): Promise<void> {
    while (this.#nextToHash < this.count && this.have.has(this.#nextToHash)) {
      const seq = this.#nextToHash;
      const bytes = new Uint8Array(this.#length(seq));
      await this.#readAt(seq * this.manifest.chunkSize, bytes);
      this.#hash.update(bytes);
      this.#nextToHash++;
    }
  }

  async #checkpoint(): Promise<void> {
    this.#lastCheckpoint = performance.now();
    await this.#file.syncData();
    const state: SavedState = {
      version: STATE_VERSION,
      manifest: this.manifest,
      have: this.have.toBase64(),
    };
    const temporary = this.statePath + ".tmp";
    await Deno.writeTextFile(temporary, JSON.stringify(state));
    await Deno.rename(temporary, this.statePath);
  }

  async #seek(offset: number): Promise<void> {
    if (this.#position !== offset) {
      await this.#file.seek(offset, Deno.SeekMode.Start);
      this.#position = offset;
    }
  }

  async #writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    await this.#seek(offset);
    let written = 0;
    try {
      while (written < bytes.length) {
        written += await this.#file.write(bytes.subarray(written));
      }
    } finally {
      this.#position = offset + written;
    }
  }

  async #readAt(offset: number, bytes: Uint8Array): Promise<void> {
    await this.#seek(offset);
    let filled = 0;
    try {
      while (filled < bytes.length) {
        const got = await this.#file.read(bytes.subarray(filled));
        if (got === null) {
          throw new Error(
            `Cannot read ${this.partPath}: ends before byte ${offset + filled}`,
          );
        }
        filled += got;
      }
    } finally {
      this.#position = offset + filled;
    }
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

async function readState(
  statePath: string,
  manifest: Manifest,
  count: number,
): Promise<ChunkBitmap | undefined> {
  let state: SavedState;
  try {
    state = JSON.parse(await Deno.readTextFile(statePath));
  } catch {
    return undefined;
  }
  if (state?.version !== STATE_VERSION || !sameFile(state.manifest, manifest)) {
    return undefined;
  }
  try {
    return ChunkBitmap.fromBase64(state.have, count);
  } catch {
    return undefined;
  }
}

function sameFile(a: Manifest | undefined, b: Manifest): boolean {
  return a !== undefined && a.name === b.name && a.size === b.size &&
    a.chunkSize === b.chunkSize && a.mtimeMs === b.mtimeMs &&
    (a.sha256 === undefined || b.sha256 === undefined || a.sha256 === b.sha256);
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return undefined;
  }
}

/** Removes `path`, ignoring one that is already gone. */
export async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Syncs the folder holding `path`, so a rename into it survives a crash. */
export async function syncFolder(path: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const folder = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  try {
    using dir = await Deno.open(folder, { read: true });
    await dir.sync();
  } catch {
    // Some platforms cannot open or sync a folder; the rename still happened.
  }
}
