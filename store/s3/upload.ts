/**
 * A file being received into an S3 store: its chunks become the parts of a
 * multipart upload to a staging key (parts of whole chunks, see
 * `part_rule.ts`), its resume state is a record in the bucket (see
 * `resume_records.ts`), and it takes its name only after its whole-file
 * SHA-256 was checked: the staging object is then copied to the name with
 * the digest in its metadata, and removed.
 *
 * Chunks arrive in any order (resume, repairs). A part's chunks are kept in
 * memory until it is whole, then uploaded (at most
 * {@linkcode MAX_UPLOADS_IN_FLIGHT} at once). At most
 * {@linkcode MAX_BUFFER_BYTES} of parts (and never fewer than two) are kept:
 * a chunk of a part that finds no room waits for an upload under way to
 * finish, or, when none is, is dropped (not marked held: the sender is asked
 * for it again at the end of the round), so memory stays bounded whatever
 * the order. The whole-file SHA-256 runs in memory as chunks become
 * contiguous, while the upload stays with this server; when it cannot (the
 * upload was begun by another server, or parts had to leave memory before
 * they were hashed) the digest is taken by reading the completed staging
 * object back.
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { type StoreError, TransferError } from "../../base/errors.ts";
import type { Logger } from "../../base/log.ts";
import { ChunkBitmap } from "../../engine/bitmap.ts";
import { bytesHeld, chunkCount, chunkLength } from "../../engine/chunks.ts";
import { firstMissing, type Manifest } from "../../engine/resume_state.ts";
import type { Upload } from "../interface.ts";
import type { Bucket, Part } from "./bucket.ts";
import type { ResumeRecord, ResumeRecords } from "./resume_records.ts";
import { objectMeta } from "./object_meta.ts";
import type { Lease } from "./lease.ts";
import { hashObject } from "./object_source.ts";
import { type Buffered, PartBuffers } from "./part_buffers.ts";
import { storedHave, tailRun, tailToRecord } from "./tail.ts";

/** Most bytes of parts one upload keeps in memory (at least two parts). */
export const MAX_BUFFER_BYTES = 64 * 1024 * 1024;
/** Most parts of one upload being sent to the store at once. */
export const MAX_UPLOADS_IN_FLIGHT = 4;
/** Times a part whose upload failed is sent again (each try may use another gateway). */
const PART_TRIES = 3;
/** The record is written again at most this often as parts arrive (and at every lease renewal). */
const SAVE_INTERVAL_MS = 1000;

/** What a claim found and hands to the upload (see `claim.ts`). */
export interface ClaimedUpload {
  bucket: Bucket;
  records: ResumeRecords;
  record: ResumeRecord;
  /** The record's entity tag, as written by this claim. */
  etag: string;
  /** The key the file takes once verified. */
  finalKey: string;
  /** Parts already in the store, by index (part number - 1). */
  parts: Map<number, Part>;
  /** Chunks held in memory from the tail object, by sequence number. */
  tailChunks: Map<number, Uint8Array>;
  /** Bytes of the first missing chunk held from the tail object. */
  partialTail: Uint8Array | undefined;
  /** The running digest when it covers exactly the first `nextToHash` chunks, else undefined. */
  hash: Hash | undefined;
  nextToHash: number;
  /** Mode and mtime the finished file gets. */
  attributes: { mode?: number | undefined; mtimeMs?: number | undefined };
  lease: Lease;
  log: Logger;
  /** Told when the upload lets go (suspended, finished or discarded), with what a later claim here may reuse. */
  onRelease: (
    warm: { etag: string; hash: Hash; nextToHash: number } | undefined,
  ) => void;
}

/** A snapshot (see {@linkcode S3Upload.snapshot}). */
interface S3Snapshot {
  hash: Hash | undefined;
  nextToHash: number;
  have: ChunkBitmap;
  parts: Map<number, Part>;
  buffered: Map<number, Map<number, Buffered>>;
  tail: Uint8Array | undefined;
  tailSeq: number;
}

/** See the module docs. */
export class S3Upload implements Upload {
  readonly manifest: Manifest;
  readonly have: ChunkBitmap;
  readonly count: number;
  readonly needsVerification = false;
  readonly resumedChunks: number;
  readonly resumedBytes: number;
  readonly parityFailure = undefined;
  #c: ClaimedUpload;
  #partChunks: number;
  #maxParts: number;
  #parts: Map<number, Part>;
  #buffered: PartBuffers;
  #uploading = new Map<number, Promise<void>>();
  #hash: Hash | undefined;
  #nextToHash: number;
  #tail: Uint8Array | undefined;
  #tailSeq = -1;
  #failure: unknown;
  #snapshots = 0;
  #completed = false;
  #digest: string | undefined;
  #finished = false;
  #closed = false;
  /** Another server took the upload over: nothing of it is ours to write or remove. */
  #lost = false;
  #writes: Promise<unknown> = Promise.resolve();
  #lastSave = 0;
  /** While a snapshot is open, what the record may say is held (what it held then). */
  #committed: S3Snapshot | undefined;

  /** The upload `claim` found. */
  constructor(claim: ClaimedUpload) {
    this.#c = claim;
    this.manifest = claim.record.manifest;
    const { size, chunkSize } = this.manifest;
    this.count = chunkCount(size, chunkSize);
    this.#partChunks = claim.record.partChunks;
    this.#maxParts = Math.max(
      2,
      Math.floor(MAX_BUFFER_BYTES / (this.#partChunks * chunkSize)),
    );
    this.#parts = claim.parts;
    this.#buffered = new PartBuffers(this.#partChunks, this.count);
    this.have = new ChunkBitmap(this.count);
    for (const index of this.#parts.keys()) {
      for (const seq of this.#buffered.seqsOf(index)) this.have.add(seq);
    }
    for (const [seq, bytes] of claim.tailChunks) {
      this.#buffered.keep(seq, bytes, undefined);
      this.have.add(seq);
    }
    this.#hash = claim.hash;
    this.#nextToHash = claim.nextToHash;
    if (claim.partialTail) {
      [this.#tail, this.#tailSeq] = [
        claim.partialTail,
        firstMissing(this.have),
      ];
    }
    this.resumedChunks = this.have.count;
    this.resumedBytes = bytesHeld(this.have, size, chunkSize);
    this.#hashHeld();
    claim.lease.start(() => this.#renew());
  }

  /** Where it goes, for log lines. */
  get label(): string {
    return `s3://${this.#c.bucket.client.config.bucket}/${this.#c.finalKey}`;
  }

  get finished(): boolean {
    return this.#finished;
  }

  get heldBytes(): number {
    const seq = firstMissing(this.have);
    if (seq >= this.count) return this.manifest.size;
    return seq * this.manifest.chunkSize +
      (seq === this.#tailSeq ? this.#tail?.length ?? 0 : 0);
  }

  verifyPart(): Promise<number> {
    return Promise.reject(
      new Error("Cannot verify part: an S3 upload keeps its own state"),
    );
  }

  async accept(
    seq: number,
    payload: Uint8Array,
    release?: (payload: Uint8Array) => void,
  ): Promise<void> {
    const length = this.#length(seq);
    if (payload.length !== length) {
      throw new RangeError(
        `Cannot accept chunk ${seq}: ${payload.length} bytes, expected ${length}`,
      );
    }
    this.#check();
    const index = this.#buffered.indexOf(seq);
    if (this.have.has(seq) || !(await this.#room(index))) {
      release?.(payload);
      return;
    }
    this.#check();
    if (this.have.has(seq)) return release?.(payload);
    // Without `release`, the caller reuses `payload` once this resolves.
    this.#buffered.keep(seq, release ? payload : payload.slice(), release);
    this.have.add(seq);
    if (seq === this.#tailSeq) [this.#tail, this.#tailSeq] = [undefined, -1];
    this.#hashHeld();
    if (this.#buffered.isWhole(index)) await this.#startUpload(index);
  }

  /**
   * Whether part `index` may keep a chunk: it already has some in memory,
   * or there is room for one more part, maybe once an upload under way ends.
   */
  async #room(index: number): Promise<boolean> {
    while (
      !this.#buffered.has(index) && this.#buffered.size >= this.#maxParts
    ) {
      if (this.#uploading.size > 0) {
        await Promise.race(this.#uploading.values());
      } else if (!this.#dropUnhashed()) return false;
    }
    return true;
  }

  /** Gives up the running digest to free the uploaded parts kept for it; whether any were. */
  #dropUnhashed(): boolean {
    let freed = false;
    for (const index of this.#buffered.indices()) {
      if (this.#parts.has(index) && this.#snapshots === 0) {
        this.#buffered.free(index);
        freed = true;
      }
    }
    if (freed) this.#hash = undefined;
    return freed;
  }

  async #startUpload(index: number): Promise<void> {
    while (this.#uploading.size >= MAX_UPLOADS_IN_FLIGHT) {
      await Promise.race(this.#uploading.values());
    }
    const pieces = this.#buffered.pieces(index);
    const size = pieces.reduce((sum, piece) => sum + piece.length, 0);
    const upload = this.#uploadPart(index + 1, pieces).then((etag) => {
      this.#parts.set(index, { number: index + 1, etag, size });
      const last = this.#buffered.seqsOf(index).at(-1)!;
      if (
        (this.#hash === undefined || this.#nextToHash > last) &&
        this.#snapshots === 0
      ) this.#buffered.free(index);
      // The record follows at most once a second (a server that dies redoes less).
      if (Date.now() - this.#lastSave >= SAVE_INTERVAL_MS) {
        this.#lastSave = Date.now();
        this.#save(this.#c.lease.extend()).catch((error) => {
          this.#failure ??= error;
        });
      }
    }, (error) => {
      this.#failure ??= error;
    }).finally(() => this.#uploading.delete(index));
    this.#uploading.set(index, upload);
  }

  async #uploadPart(number: number, pieces: Uint8Array[]): Promise<string> {
    const { bucket, record } = this.#c;
    for (let attempt = 1;; attempt++) {
      try {
        return await bucket.uploadPart(
          record.staging,
          record.uploadId,
          number,
          pieces,
        );
      } catch (error) {
        if (attempt >= PART_TRIES || this.#closed) throw error;
      }
    }
  }

  /** Feeds the running digest every chunk held in memory from the next one on. */
  #hashHeld(): void {
    while (this.#hash && this.#nextToHash < this.count) {
      const seq = this.#nextToHash;
      if (!this.have.has(seq)) return;
      const index = this.#buffered.indexOf(seq);
      const kept = this.#buffered.get(seq);
      if (!kept) {
        this.#hash = undefined; // Held in the store only: read back at the end.
        return;
      }
      this.#hash.update(kept.bytes);
      this.#nextToHash++;
      const seqs = this.#buffered.seqsOf(index);
      if (
        seq === seqs.at(-1) && this.#parts.has(index) && this.#snapshots === 0
      ) {
        this.#buffered.free(index);
      }
    }
  }

  readChunk(seq: number, into: Uint8Array): Promise<void> {
    const kept = this.#buffered.get(seq);
    if (!kept) {
      return Promise.reject(
        new Error(`Cannot read chunk ${seq} back: it is in the store only`),
      );
    }
    into.set(kept.bytes);
    return Promise.resolve();
  }

  flush(): Promise<void> {
    this.#check();
    return Promise.resolve();
  }

  writeTail(bytes: Uint8Array): Promise<void> {
    const seq = firstMissing(this.have);
    if (seq >= this.count || bytes.length >= this.#length(seq)) {
      throw new RangeError(
        `Cannot keep ${bytes.length} bytes of chunk ${seq} as its tail`,
      );
    }
    [this.#tail, this.#tailSeq] = [bytes.slice(), seq];
    return Promise.resolve();
  }

  readTail(into: Uint8Array): Promise<number> {
    const seq = firstMissing(this.have);
    if (seq !== this.#tailSeq || !this.#tail) return Promise.resolve(0);
    into.set(this.#tail);
    return Promise.resolve(this.#tail.length);
  }

  snapshot(): Promise<object> {
    this.#snapshots++;
    const buffered = this.#buffered.copy();
    const snapshot: S3Snapshot = {
      hash: this.#hash?.copy(),
      nextToHash: this.#nextToHash,
      have: ChunkBitmap.fromBase64(this.have.toBase64(), this.count),
      parts: new Map(this.#parts),
      buffered,
      tail: this.#tail,
      tailSeq: this.#tailSeq,
    };
    this.#committed = snapshot;
    return Promise.resolve(snapshot);
  }

  async settle(snapshot: object, undo: boolean): Promise<void> {
    await this.#settleUploads();
    this.#snapshots--;
    this.#committed = undefined;
    const s = snapshot as S3Snapshot;
    if (undo) {
      // Parts uploaded since are sent again; the chunks taken since are forgotten.
      this.have.retainOnly(s.have);
      this.#parts = s.parts;
      this.#buffered.restore(s.buffered);
      [this.#hash, this.#nextToHash] = [s.hash, s.nextToHash];
      [this.#tail, this.#tailSeq] = [s.tail, s.tailSeq];
    }
    for (const index of this.#buffered.indices()) {
      const last = this.#buffered.seqsOf(index).at(-1)!;
      if (
        this.#parts.has(index) &&
        (this.#hash === undefined || this.#nextToHash > last)
      ) this.#buffered.free(index);
    }
  }

  /** Waits for every part upload under way (each succeeds or poisons the upload). */
  async #settleUploads(): Promise<void> {
    while (this.#uploading.size > 0) {
      await Promise.all(this.#uploading.values());
    }
  }

  async checkpoint(): Promise<void> {
    await this.#settleUploads();
    this.#check();
    await this.#save(this.#c.lease.extend(), true);
  }

  async digest(): Promise<string> {
    await this.#settleUploads();
    this.#check();
    const missing = firstMissing(this.have);
    if (missing < this.count) {
      throw new Error(`Cannot compute digest: chunk ${missing} is not held`);
    }
    this.#hashHeld();
    if (this.#digest !== undefined) return this.#digest;
    if (this.#hash && this.#nextToHash === this.count) {
      this.#digest = this.#hash.digest("hex");
    } else {
      await this.#complete();
      const { bucket, record } = this.#c;
      this.#digest = await hashObject(
        bucket,
        record.staging,
        this.manifest.size,
      );
    }
    return this.#digest;
  }

  /**
   * Completes the multipart upload into the staging object, after one more
   * write of the record proves this server still owns the upload.
   */
  async #complete(): Promise<void> {
    if (this.#completed) return;
    await this.#save(this.#c.lease.extend());
    const { bucket, record } = this.#c;
    const parts = [...this.#parts.values()].sort((a, b) => a.number - b.number);
    try {
      await bucket.complete(record.staging, record.uploadId, parts);
    } catch (error) {
      if ((error as StoreError).code !== "InvalidPart") throw error;
      throw await this.#reconcile(error as StoreError);
    }
    this.#completed = true;
  }

  /**
   * The store refused to complete with the parts this upload knows: those
   * it does not hold as recorded are forgotten (their chunks are asked for
   * again by the next attempt) and the record says so.
   */
  async #reconcile(error: StoreError): Promise<TransferError> {
    const { bucket, record, log } = this.#c;
    const listed = await bucket.listParts(record.staging, record.uploadId);
    const inStore = new Map((listed ?? []).map((part) => [part.number, part]));
    const wrong: number[] = [];
    for (const [index, part] of this.#parts) {
      const now = inStore.get(part.number);
      inStore.delete(part.number);
      if (now?.etag === part.etag && now.size === part.size) continue;
      wrong.push(part.number);
      this.#parts.delete(index);
    }
    wrong.push(...inStore.keys()); // Parts in the store this upload never named.
    this.have.retainOnly(
      storedHave(this.manifest, this.#buffered, this.#parts, undefined),
    );
    log.warn(
      `Cannot complete ${this.label}: ${error.message}; part(s) ${
        wrong.join(", ") || "none"
      } not as uploaded, to be sent again`,
    );
    this.#hash = undefined;
    await this.#save(this.#c.lease.extend());
    return new TransferError(
      `Cannot complete ${this.label}: the store lacks ${wrong.length} of its parts; they will be sent again`,
      { retryable: true, cause: error },
    );
  }

  /**
   * Copies the verified staging object to the file's name with its digest
   * in the metadata (one atomic replace: a name written by two servers at
   * once ends as one of the two), then removes the staging object, the
   * tail and the record.
   */
  async finalize(): Promise<void> {
    if (this.#finished) return;
    const digest = await this.digest();
    await this.#complete();
    const { bucket, record, finalKey, attributes } = this.#c;
    const staged = await bucket.head(record.staging);
    if (!staged || staged.size !== this.manifest.size) {
      throw new TransferError(
        `Cannot finish ${this.label}: its staging object is gone or of another size`,
        { retryable: true },
      );
    }
    await bucket.copy(
      { key: record.staging, etag: staged.etag, size: staged.size },
      finalKey,
      objectMeta(digest, attributes),
    );
    this.#finished = true;
    await this.#forget();
  }

  async discard(): Promise<void> {
    await this.#settleUploads().catch(() => undefined);
    const { bucket, record } = this.#c;
    if (!this.#lost && !this.#completed) {
      await bucket.abort(record.staging, record.uploadId);
    }
    await this.#forget();
  }

  /** Drops the staging object, tail and record (unless another server owns them now), and lets go. */
  async #forget(): Promise<void> {
    const { bucket, record, records } = this.#c;
    this.#close(undefined);
    await this.#writes.catch(() => undefined);
    if (this.#lost) return;
    if (this.#completed) await bucket.delete(record.staging);
    if (record.tail) await bucket.delete(record.tail.key);
    await records.remove(this.manifest.name);
  }

  async suspend(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#settleUploads().catch(() => undefined);
      if (this.#failure === undefined) await this.#save(0, true);
    } finally {
      const hash = this.#hash;
      this.#close(
        hash && this.#failure === undefined
          ? { etag: this.#c.etag, hash, nextToHash: this.#nextToHash }
          : undefined,
      );
    }
  }

  #close(warm: Parameters<ClaimedUpload["onRelease"]>[0]): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#c.lease.stop();
    for (const index of this.#buffered.indices()) this.#buffered.free(index);
    this.#c.onRelease(warm);
  }

  /**
   * Renews the lease (the record written again); a lease that ran out
   * before it could be renewed, or a record another server wrote, poisons
   * the upload.
   */
  async #renew(): Promise<void> {
    if (this.#closed || this.#failure !== undefined) return;
    if (this.#c.lease.expired) {
      this.#failure ??= new TransferError(
        `Cannot go on with ${this.label}: its lease ran out before it could be renewed`,
        { retryable: true },
      );
      return;
    }
    await this.#save(this.#c.lease.extend()).catch((error) => {
      this.#failure ??= error;
    });
  }

  /**
   * Writes the record: the parts uploaded, the tail (stored anew with
   * `storeTail`), the lease. Writes run one at a time; a write that finds
   * another server's record poisons the upload.
   */
  #save(leaseUntil: number, storeTail = false): Promise<void> {
    const write = this.#writes.then(async () => {
      if (this.#finished || this.#lost) return;
      const { records, record } = this.#c;
      const tail = this.#committed ? record.tail : await tailToRecord(
        this.#c.bucket,
        record,
        tailRun(
          this.#buffered,
          this.#parts,
          this.#tail ? { seq: this.#tailSeq, bytes: this.#tail } : undefined,
        ),
        storeTail,
      );
      const parts = this.#committed?.parts ?? this.#parts;
      const next: ResumeRecord = {
        ...record,
        parts: [...parts.values()].sort((a, b) => a.number - b.number),
        have: storedHave(this.manifest, this.#buffered, parts, tail)
          .toBase64(),
        ...(tail ? { tail } : {}),
        leaseUntil,
        writeId: crypto.randomUUID(),
        updatedMs: Date.now(),
      };
      if (!tail) delete next.tail;
      const etag = await records.write(this.manifest.name, next, this.#c.etag);
      this.#lastSave = Date.now();
      if (etag === "conflict") {
        this.#lost = true;
        throw new TransferError(
          `Cannot go on with ${this.label}: another server took the upload over`,
          { retryable: true },
        );
      }
      this.#c.etag = etag;
      this.#c.record = next;
    });
    this.#writes = write.catch(() => undefined);
    return write;
  }

  #length(seq: number): number {
    return chunkLength(seq, this.manifest.size, this.manifest.chunkSize);
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }
}
