/**
 * Where a server keeps files: one interface, {@linkcode Store}, that every
 * request handler (ftv/1 and HTTP alike) sees, with two implementations: a
 * local folder (`store/local/`: the catalog, part files, parity and digest
 * cache) and an S3 bucket (`store/s3/`: multipart uploads whose resume state
 * lives in the bucket, so any server can continue any transfer). The way
 * tusd's handler sees only its DataStore, Upload and Locker.
 *
 * @module
 */

import {
  ERROR_CODE,
  type Outcome,
  type Refusal,
  refusal,
} from "../base/errors.ts";
import type { Logger } from "../base/log.ts";
import type { ChunkSink } from "../engine/chunk_sink.ts";
import type { ChunkSource } from "../engine/chunk_source.ts";
import type { EagerBody } from "../engine/receiver.ts";
import type { Manifest } from "../engine/resume_state.ts";
import type { ChunkGuard } from "../engine/sender.ts";
import type { DirEntry, FileEntry } from "../protocol.ts";
import type { UploadRecord } from "./upload_record.ts";

export type { UploadProtocol, UploadRecord } from "./upload_record.ts";
export { manifestOf, newUploadId } from "./upload_record.ts";

/** Mode and times a stored file or folder gets. */
export interface Attributes {
  /** Permission bits; masked to the permission bits and the umask. */
  mode?: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
}

/** A stored file opened for reading: its entry and its bytes. */
export interface StoredFile extends Disposable {
  /** Name, size, digest, times. */
  readonly entry: FileEntry;
  /** Its bytes, read at any offset. */
  readonly source: ChunkSource;
  /** Lets go of it. */
  close(): void;
}

/** What {@linkcode Store.readSmall} found. */
export type SmallRead =
  | { kind: "refused"; refusal: Refusal }
  | { kind: "missing" }
  /** Larger than asked for, or changed size while read. */
  | { kind: "tooLarge" }
  | { kind: "ok"; entry: FileEntry; bytes: Uint8Array };

/** A small file sent whole (an eager put), as {@linkcode Store.storeSmall} takes it. */
export interface SmallPut {
  name: string;
  size: number;
  sha256: string;
  mode?: number;
  mtimeMs: number;
}

/** What {@linkcode Store.storeSmall} did. */
export type SmallStored =
  /** Stored under its name. */
  | { kind: "stored" }
  /** Already held with that size and digest: nothing written. */
  | { kind: "held" }
  /** Not stored now (damaged on the way, or a transfer of the name is under way): send it the ordinary way. */
  | { kind: "retry"; reason?: string }
  | { kind: "refused"; refusal: Refusal };

/** What {@linkcode Store.recheck} found. */
export type Recheck =
  | { kind: "intact" | "new"; sha256: string; size: number }
  | { kind: "damaged"; expected: string; actual: string; size: number }
  | { kind: "missing" };

/** Options for {@linkcode Store.receive}. */
export interface ReceiveOptions {
  /** Sync before the file takes its name (a local folder). */
  fsync: boolean;
  /** Mode and mtime the finished file gets. */
  attributes?: { mode?: number | undefined; mtimeMs?: number | undefined };
}

/**
 * A file being received into a store: the engine's {@linkcode ChunkSink},
 * plus what resumable HTTP uploads need (bytes held from the start, a
 * partial chunk kept across requests, a checkpoint before an offset is
 * told, and undo for a per-request checksum). Finalising records the
 * file's digest, so a file under its name always has one.
 */
export interface Upload extends ChunkSink {
  /** Bytes held from the start of the file without a gap, a partial chunk included. */
  readonly heldBytes: number;
  /** Keeps `bytes` as the start of the first chunk not held (a request cut mid-chunk). */
  writeTail(bytes: Uint8Array): Promise<void>;
  /** Reads that partial chunk into the start of `into`; its length. */
  readTail(into: Uint8Array): Promise<number>;
  /** Makes what is held durable now, so it may be reported as held. */
  checkpoint(): Promise<void>;
  /** What is held now, to go back to with {@linkcode settle}. */
  snapshot(): Promise<object>;
  /** Ends `snapshot`: keeps what was taken since, or (`undo`) forgets it. */
  settle(snapshot: object, undo: boolean): Promise<void>;
  /** Whether {@linkcode ChunkSink.finalize} has run. */
  readonly finished: unknown;
  /** Why parity could not be kept for it, if it could not (the file is fine). */
  readonly parityFailure: Error | undefined;
}

/** The records of resumable HTTP uploads, kept in the store so any server finds them. */
export interface UploadRecordStore {
  /** Saves `record` whole or not at all. */
  save(record: UploadRecord): Promise<void>;
  /** The record of `id`, or `undefined`. */
  read(id: string): Promise<UploadRecord | undefined>;
  /** Removes the record of `id`. */
  remove(id: string): Promise<void>;
  /** Every readable record, with when it was saved. */
  all(): Promise<{ record: UploadRecord; savedMs: number }[]>;
}

/** What one sweep of abandoned uploads removed. */
export interface SweepReport {
  /** Files (or objects, or multipart uploads) removed. */
  files: number;
  /** Their bytes, where known. */
  bytes: number;
}

/** What one store check found. */
export interface StoreCheckReport {
  /** Files hashed. */
  files: number;
  /** Their bytes. */
  bytes: number;
  /** Files whose digest was confirmed. */
  intact: number;
  /** Files with no digest on record (new, or changed in size or mtime): hashed and recorded. */
  recorded: number;
  /** Names of the files found damaged and left so. */
  damaged: string[];
  /** Names of the files found damaged and rebuilt from parity. */
  repaired: string[];
  /** Files that got parity for the first time. */
  parityAdded: number;
  /** Wall-clock seconds. */
  seconds: number;
}

/** A report of a store check that has found nothing yet. */
export function newCheckReport(): StoreCheckReport {
  return {
    files: 0,
    bytes: 0,
    intact: 0,
    recorded: 0,
    damaged: [],
    repaired: [],
    parityAdded: 0,
    seconds: 0,
  };
}

/** Where a server keeps files; see the module docs. */
export interface Store {
  /** What and where it is, for the log: a folder, or `s3://BUCKET/PREFIX`. */
  readonly description: string;
  /** Whether a claimed upload should be let go between HTTP requests (other servers may continue it). */
  readonly shared: boolean;
  /** Why `name` (already a legal name) cannot be used here now, e.g. a link on the way. */
  nameRefusal(name: string): Promise<Refusal | undefined>;
  /** Makes what storing `name` needs (the folders on the way); why not. */
  prepare(name: string): Refusal | undefined;
  /** Bytes taken by stored files and unfinished uploads. */
  totalBytes(): Promise<number>;
  /** The stored file `name` with its digest, or `undefined`. */
  lookup(name: string): Promise<FileEntry | undefined>;
  /** Opens the stored file `name` for reading; `undefined` when absent. */
  open(name: string): Promise<StoredFile | undefined>;
  /** A stored file of at most `maxBytes`, read whole and checked against its digest. */
  readSmall(name: string, maxBytes: number): Promise<SmallRead>;
  /** Stores a small file sent whole (its body checked against `put.sha256`). */
  storeSmall(
    put: SmallPut,
    body: EagerBody,
    options: { fsync: boolean },
  ): Promise<SmallStored>;
  /** Makes the folder `name` (and those on the way) with its mode and mtime. */
  makeFolder(
    name: string,
    attributes: Attributes,
  ): Promise<Refusal | undefined>;
  /** Every stored file and folder, or those at and under `prefix`. */
  listTree(prefix?: string): Promise<{ files: FileEntry[]; dirs: DirEntry[] }>;
  /** Hashes `name` again and compares it with the digest it was stored with. */
  recheck(name: string): Promise<Recheck>;
  /**
   * Claims the upload of `manifest`: resumes what an earlier run (on any
   * server sharing the store) left, or starts afresh; `busy` when another
   * transfer holds it.
   */
  receive(
    manifest: Manifest,
    options: ReceiveOptions,
  ): Promise<Outcome<Upload>>;
  /** When the unfinished upload of `name` was last written, if there is one. */
  lastWritten(name: string): Promise<number | undefined>;
  /** What checks each chunk of `name` read for sending (parity), if anything. */
  guardFor(
    name: string,
    entry: FileEntry,
    log: Logger,
  ): Promise<ChunkGuard | undefined>;
  /** The records of resumable HTTP uploads. */
  readonly records: UploadRecordStore;
  /** Removes what uploads abandoned for `ttlMs` left. */
  sweep(ttlMs: number, log: Logger): Promise<SweepReport>;
  /** Hashes every stored file again (`server --verify`). */
  check(log: Logger, signal?: AbortSignal): Promise<StoreCheckReport>;
  /** Writes what is cached (digests) if anything changed. */
  flush(): Promise<void>;
  /** Lets go of what it holds. */
  close(): Promise<void>;
}

/** The refusal of a file whose bytes no longer match the digest it was stored with. */
export function damagedRefusal(expected: string): Refusal {
  return refusal(
    ERROR_CODE.damaged,
    `the stored copy is damaged (its bytes no longer have SHA-256 ${expected}); send it again to repair it`,
  );
}

/** The refusal of an upload the store has no room for. */
export function noSpaceRefusal(name: string): Refusal {
  return refusal(
    ERROR_CODE.noSpace,
    `the server has no space left for ${JSON.stringify(name)}`,
  );
}
