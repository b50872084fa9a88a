/**
 * Where a receiver puts chunks: `<name>.ftv-part` plus `<name>.ftv-state`
 * (the manifest and a bitmap of verified chunks). A chunk is marked only after
 * its bytes are written; the state is saved at checkpoints, after the part
 * file is synced, so it never claims a chunk the part file does not hold.
 * (Even a state that did would only cost a re-transfer: the whole-file digest
 * is checked before anything is finalised.)
 * Finalising checks the whole-file SHA-256, syncs, renames into place and
 * syncs the folder: nothing partial ever sits under the final name.
 *
 * @module
 */

import { ERROR_CODE, type Outcome, refusal } from "../base/errors.ts";
import { receivedMode } from "./file_mode.ts";
import { folderOf } from "../base/paths.ts";
import { removeIfPresent, syncFolder } from "./atomic_file.ts";
import { bytesHeld, chunkCount, chunkLength, isAllZero } from "./chunks.ts";
import { claimPart, PartIo } from "./part_file.ts";
import { ParityKeeper } from "./parity_keeper.ts";
import type { ChunkSink } from "./chunk_sink.ts";
import {
  firstMissing,
  type Manifest,
  readState,
  resumable,
  type StoreSnapshot,
  writeState,
} from "./resume_state.ts";

export type { Manifest, StoreSnapshot };
import { createHash, type Hash } from "node:crypto";
import { crc32 } from "node:zlib";
import { ChunkBitmap } from "./bitmap.ts";
import {
  PART_SUFFIX,
  STATE_SUFFIX,
  STATE_TEMP_SUFFIX,
} from "../protocol/names.ts";

/** Options for {@linkcode ChunkStore.claim}. */
export interface ChunkStoreOptions {
  /** Milliseconds between saved checkpoints. @default 1000 */
  checkpointMs?: number;
  /**
   * Sync to disk at checkpoints and before the final rename, so a power loss
   * never leaves a damaged file under the final name. Without it, process
   * crashes are still safe (the page cache survives them). @default true
   */
  fsync?: boolean;
  /**
   * Permission bits and modification time the finished file gets, set on
   * the part file before it takes its final name.
   */
  attributes?: { mode?: number; mtimeMs?: number };
  /**
   * Reed-Solomon parity to keep for the finished file (see
   * `parity/parity_file.ts`): groups of `k` chunks with `m` parity shards,
   * computed as the chunks are hashed and written to `path` once the file
   * has taken its final name.
   */
  parity?: { k: number; m: number; path: string };
  /**
   * Told of the finished file (its digest, and its stat as renamed) once it
   * holds its final name, while the claim is still held.
   */
  onFinalized?: (sha256: string, info: Deno.FileInfo) => Promise<void>;
}

/**
 * Most bytes of chunks kept in memory while an earlier chunk is missing, so
 * they are hashed without being read back once it arrives. Bounded, so
 * memory stays flat; chunks past it are read back from the part file.
 */
export const MAX_AHEAD_BYTES = 16 * 1024 * 1024;

/** A file being received, chunk by chunk, resumable across runs. */
export class ChunkStore implements ChunkSink {
  /** The final path; nothing is written there before {@linkcode finalize}. */
  readonly path: string;
  readonly partPath: string;
  readonly statePath: string;
  readonly manifest: Manifest;
  /** Chunks verified and written. */
  readonly have: ChunkBitmap;
  /**
   * True when a part file exists but its state is missing, damaged or
   * inconsistent: its chunks must be checked against the sender's chunk
   * checksums ({@linkcode verifyPart}) before any of them counts.
   */
  readonly needsVerification: boolean;
  #resumedChunks = 0;
  #resumedBytes = 0;
  #io: PartIo;
  #queue: Promise<void> = Promise.resolve();
  #failure: unknown;
  #hash: Hash = createHash("sha256");
  #nextToHash = 0;
  /** Chunks written ahead of {@linkcode #nextToHash}, kept to hash without reading back. */
  #ahead = new Map<
    number,
    {
      payload: Uint8Array;
      release: ((payload: Uint8Array) => void) | undefined;
    }
  >();
  #aheadBytes = 0;
  /** The buffer chunks are read back into for hashing. */
  #scratch: Uint8Array | undefined;
  #checkpointMs: number;
  #fsync: boolean;
  #attributes: ChunkStoreOptions["attributes"];
  #lastCheckpoint = performance.now();
  #background: Promise<void> | undefined;
  #closed = false;
  #finished: Deno.FileInfo | undefined;
  /** Bytes of chunk `#tailSeq` held from its start (see {@linkcode writeTail}). */
  #tail = 0;
  #tailSeq = -1;
  #snapshots = 0;
  #digest: string | undefined;
  #parity: ParityKeeper;
  #onFinalized: ChunkStoreOptions["onFinalized"];

  private constructor(
    path: string,
    manifest: Manifest,
    have: ChunkBitmap,
    file: Deno.FsFile,
    partSize: number,
    needsVerification: boolean,
    options: ChunkStoreOptions,
  ) {
    this.path = path;
    this.partPath = path + PART_SUFFIX;
    this.statePath = path + STATE_SUFFIX;
    this.manifest = manifest;
    this.have = have;
    this.needsVerification = needsVerification;
    this.#noteResumed();
    this.#io = new PartIo(file, this.partPath, partSize);
    this.#checkpointMs = options.checkpointMs ?? 1000;
    this.#fsync = options.fsync ?? true;
    this.#attributes = options.attributes;
    this.#parity = new ParityKeeper(options.parity, {
      chunkSize: manifest.chunkSize,
      size: manifest.size,
    });
    this.#onFinalized = options.onFinalized;
  }

  /**
   * Claims the part file for `path` (see `part_file.ts`): a `busy` refusal
   * when another transfer, in this process or another, holds it. A saved
   * state describing the same file, consistent with the part file, is
   * resumed; a part file whose state is missing, damaged or inconsistent is
   * kept but trusted for nothing until {@linkcode verifyPart}; anything else
   * starts afresh.
   */
  static async claim(
    path: string,
    manifest: Manifest,
    options: ChunkStoreOptions = {},
  ): Promise<Outcome<ChunkStore>> {
    const claimed = await claimPart(path + PART_SUFFIX);
    if (!claimed) {
      return {
        ok: false,
        refusal: refusal(
          ERROR_CODE.busy,
          "another transfer of it is in progress (its part file is held)",
        ),
      };
    }
    const { file, size: partSize } = claimed;
    try {
      const resumed = resumable(
        await readState(path + STATE_SUFFIX),
        manifest,
        partSize,
      );
      const { have, needsVerification, tail } = resumed;
      const keepPart = have !== undefined || needsVerification;
      if (!keepPart && partSize > 0) await file.truncate(0);
      const count = chunkCount(manifest.size, manifest.chunkSize);
      const store = new ChunkStore(
        path,
        manifest,
        have ?? new ChunkBitmap(count),
        file,
        keepPart ? partSize : 0,
        needsVerification,
        options,
      );
      if (tail > 0) [store.#tail, store.#tailSeq] = [tail, firstMissing(have!)];
      return { ok: true, value: store };
    } catch (error) {
      file.close();
      throw error;
    }
  }

  /** The finished file as it was renamed into place, once {@linkcode finalize} has run. */
  get finished(): Deno.FileInfo | undefined {
    return this.#finished;
  }

  /** The part file's path, for log lines. */
  get label(): string {
    return this.partPath;
  }

  /** Why the parity file could not be written, if it could not (the file itself is fine). */
  get parityFailure(): Error | undefined {
    return this.#parity.failure;
  }

  /** Chunks already held from an earlier run. */
  get resumedChunks(): number {
    return this.#resumedChunks;
  }

  /** Bytes of those chunks. */
  get resumedBytes(): number {
    return this.#resumedBytes;
  }

  #noteResumed(): void {
    this.#resumedChunks = this.have.count;
    this.#resumedBytes = bytesHeld(
      this.have,
      this.manifest.size,
      this.manifest.chunkSize,
    );
  }

  /**
   * Rebuilds the bitmap of a part file whose state was lost: every complete
   * chunk in it whose CRC-32 equals the sender's counts as held. The
   * whole-file SHA-256 still checks everything before the file is finalised.
   */
  verifyPart(crcs: Uint32Array): Promise<number> {
    if (crcs.length !== this.count) {
      throw new RangeError(
        `Cannot verify part file: ${crcs.length} checksums for ${this.count} chunks`,
      );
    }
    return this.#enqueue(async () => {
      const { size, chunkSize } = this.manifest;
      for (let seq = 0; seq < this.count; seq++) {
        const length = chunkLength(seq, size, chunkSize);
        if (seq * chunkSize + length > this.#io.size) break;
        const bytes = new Uint8Array(length);
        await this.#io.readAt(seq * chunkSize, bytes);
        if (crc32(bytes) === crcs[seq]) this.have.add(seq);
      }
      this.#noteResumed();
      await this.#checkpoint();
      return this.have.count;
    });
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
   * overwrite good bytes. `release` is told when the store is done with
   * `payload`: at once after writing, or, for a chunk that arrived ahead of
   * one still missing, once it is hashed from memory.
   */
  accept(
    seq: number,
    payload: Uint8Array,
    release?: (payload: Uint8Array) => void,
  ): Promise<void> {
    if (payload.length !== this.#length(seq)) {
      throw new RangeError(
        `Cannot accept chunk ${seq}: ${payload.length} bytes, expected ${
          this.#length(seq)
        }`,
      );
    }
    return this.#enqueue(async () => {
      if (this.have.has(seq)) {
        release?.(payload);
        return;
      }
      const offset = seq * this.manifest.chunkSize;
      try {
        // A chunk of zeros past the part file's end stays a hole; within it,
        // the bytes there may be stale (a chunk written but never marked).
        if (offset >= this.#io.size && isAllZero(payload)) {
          await this.#io.extendTo(offset + payload.length);
        } else await this.#io.writeAt(offset, payload);
      } catch (error) {
        release?.(payload);
        throw error;
      }
      this.have.add(seq);
      if (seq === this.#tailSeq) this.#tail = 0;
      if (seq === this.#nextToHash) {
        await this.#digestChunk(seq, payload);
        release?.(payload);
      } else if (!this.#holdAhead(seq, payload, release)) {
        release?.(payload);
      }
      await this.#hashHeldChunks();
      this.#checkpointInBackgroundWhenDue();
    });
  }

  /**
   * Keeps a chunk that arrived ahead of the next one to hash, while the
   * bytes so kept stay under {@linkcode MAX_AHEAD_BYTES}; false when full.
   */
  #holdAhead(
    seq: number,
    payload: Uint8Array,
    release: ((payload: Uint8Array) => void) | undefined,
  ): boolean {
    if (this.#aheadBytes + payload.length > MAX_AHEAD_BYTES) return false;
    this.#ahead.set(seq, { payload, release });
    this.#aheadBytes += payload.length;
    return true;
  }

  /** Lets go of every chunk kept ahead (the transfer is over or failed). */
  #releaseAhead(): void {
    for (const { payload, release } of this.#ahead.values()) release?.(payload);
    this.#ahead.clear();
    this.#aheadBytes = 0;
  }

  /**
   * Starts a checkpoint without holding up writes: the bitmap is copied
   * first, so the state saved after the sync claims only chunks written
   * before it began.
   */
  #checkpointInBackgroundWhenDue(): void {
    if (this.#background !== undefined || this.#snapshots > 0) return;
    if (performance.now() - this.#lastCheckpoint < this.#checkpointMs) return;
    this.#background = this.#checkpoint()
      .catch((error) => {
        this.#failure ??= error;
      })
      .finally(() => {
        this.#background = undefined;
      });
  }

  /**
   * Reads held chunk `seq` back into `into` (its length), after every write
   * queued before: to rebuild another chunk from parity.
   */
  readChunk(seq: number, into: Uint8Array): Promise<void> {
    return this.#enqueue(() =>
      this.#io.readAt(seq * this.manifest.chunkSize, into)
    );
  }

  /** Waits for every queued write. */
  flush(): Promise<void> {
    return this.#enqueue(() => Promise.resolve());
  }

  /** Bytes held from the start of the file without a gap, the tail included. */
  get heldBytes(): number {
    const seq = firstMissing(this.have);
    if (seq >= this.count) return this.manifest.size;
    return seq * this.manifest.chunkSize +
      (seq === this.#tailSeq ? this.#tail : 0);
  }

  /** Writes `bytes` as the start of the first chunk not held (a stream cut mid-chunk); counted in {@linkcode heldBytes}, marked only once accepted whole. */
  writeTail(bytes: Uint8Array): Promise<void> {
    return this.#enqueue(async () => {
      const seq = firstMissing(this.have);
      if (seq >= this.count || bytes.length >= this.#length(seq)) {
        throw new RangeError(
          `Cannot keep ${bytes.length} bytes of chunk ${seq} as its tail`,
        );
      }
      [this.#tail, this.#tailSeq] = [0, seq];
      await this.#io.writeAt(seq * this.manifest.chunkSize, bytes);
      this.#tail = bytes.length;
    });
  }

  /** Reads the tail (see {@linkcode writeTail}) into the start of `into`; its length. */
  readTail(into: Uint8Array): Promise<number> {
    return this.#enqueue(async () => {
      const seq = firstMissing(this.have);
      if (seq !== this.#tailSeq || this.#tail === 0) return 0;
      const start = seq * this.manifest.chunkSize;
      await this.#io.readAt(start, into.subarray(0, this.#tail));
      return this.#tail;
    });
  }

  /** Flushes, syncs (unless told not to) and saves the state now. */
  async checkpoint(): Promise<void> {
    await this.flush();
    await this.#background;
    await this.#checkpoint();
  }

  /** What is held and hashed now, for {@linkcode settle}; until then, no checkpoint runs in the background. */
  snapshot(): Promise<StoreSnapshot> {
    return this.#enqueue(() => {
      this.#snapshots++;
      return Promise.resolve({
        hash: this.#hash.copy(),
        nextToHash: this.#nextToHash,
        have: ChunkBitmap.fromBase64(this.have.toBase64(), this.count),
        tail: this.#tail,
        tailSeq: this.#tailSeq,
      });
    });
  }

  /** Ends `snapshot`: keeps what was accepted since, or (`undo`) forgets it all. */
  settle(snapshot: StoreSnapshot, undo: boolean): Promise<void> {
    return this.#enqueue(() => {
      this.#snapshots--;
      if (!undo) return Promise.resolve();
      this.have.retainOnly(snapshot.have);
      this.#releaseAhead();
      if (this.#parity.writing) {
        this.#parity.drop(new Error("chunks were undone"));
      }
      this.#hash = snapshot.hash;
      this.#nextToHash = snapshot.nextToHash;
      [this.#tail, this.#tailSeq] = [snapshot.tail, snapshot.tailSeq];
      return Promise.resolve();
    });
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
      this.#digest ??= this.#hash.digest("hex");
      return this.#digest;
    });
  }

  /**
   * Syncs, renames the part file into place, syncs the folder and drops the
   * state, all while the claim is held, so only the process whose bytes
   * were verified ever renames. Resolves to the finished file's stat.
   */
  async finalize(): Promise<Deno.FileInfo> {
    if (this.#finished) return this.#finished;
    await this.flush();
    await this.#background;
    const { mode, mtimeMs } = this.#attributes ?? {};
    await this.#io.extendTo(this.manifest.size); // Trailing zero chunks stay holes.
    if (mode !== undefined) {
      await Deno.chmod(this.partPath, receivedMode(mode, folderOf(this.path)));
    }
    if (mtimeMs !== undefined) {
      await this.#io.file.utime(new Date(), new Date(mtimeMs));
    }
    if (this.#fsync) await this.#io.file.sync();
    try {
      await Deno.rename(this.partPath, this.path);
      if (this.#fsync) await syncFolder(this.path);
      await removeIfPresent(this.statePath);
      this.#finished = await this.#io.file.stat();
      if (this.#onFinalized && this.#digest !== undefined) {
        await this.#onFinalized(this.#digest, this.#finished);
      }
      await this.#parity.finish(this.#digest, this.#fsync);
      return this.#finished;
    } finally {
      this.#close();
    }
  }

  /** Deletes the part file and state and gives up the claim: the next run starts afresh. */
  async discard(): Promise<void> {
    await this.#settle();
    try {
      await removeIfPresent(this.partPath);
      await removeIfPresent(this.statePath);
    } finally {
      this.#close();
    }
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
    await this.#background;
  }

  /**
   * Hashes every held chunk from the next one on: from memory when it was
   * kept ahead, else read back from the part file into one reused buffer.
   */
  async #hashHeldChunks(): Promise<void> {
    while (this.#nextToHash < this.count && this.have.has(this.#nextToHash)) {
      const seq = this.#nextToHash;
      const kept = this.#ahead.get(seq);
      if (kept) {
        this.#ahead.delete(seq);
        this.#aheadBytes -= kept.payload.length;
        await this.#digestChunk(seq, kept.payload);
        kept.release?.(kept.payload);
      } else {
        this.#scratch ??= new Uint8Array(this.manifest.chunkSize);
        const bytes = this.#scratch.subarray(0, this.#length(seq));
        await this.#io.readAt(seq * this.manifest.chunkSize, bytes);
        await this.#digestChunk(seq, bytes);
      }
    }
  }

  /** Feeds the next chunk, in order, to the whole-file digest and the parity. */
  async #digestChunk(seq: number, bytes: Uint8Array): Promise<void> {
    this.#hash.update(bytes);
    this.#nextToHash++;
    await this.#parity.add(seq, bytes);
  }

  async #checkpoint(): Promise<void> {
    this.#lastCheckpoint = performance.now();
    const have = ChunkBitmap.fromBase64(this.have.toBase64(), this.count);
    const tail = this.#tail;
    if (this.#fsync) await this.#io.file.syncData();
    await writeState(
      this.statePath,
      this.path + STATE_TEMP_SUFFIX,
      this.manifest,
      have,
      tail,
    );
  }

  #close(): void {
    this.#releaseAhead();
    if (this.#parity.writing) this.#parity.drop();
    if (this.#closed) return;
    this.#closed = true;
    this.#io.file.close();
  }
}
