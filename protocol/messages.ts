/**
 * ftv/1 control messages: the JSON carried by CONTROL frames, as a
 * discriminated union on `type`, and the parser that checks a peer's JSON
 * against it before anything else sees it. Pure: no I/O.
 *
 * @module
 */

import { type ErrorCode, ProtocolError } from "../base/errors.ts";

const decoder = new TextDecoder("utf-8", { fatal: true });

/** Permission bits a peer may send or set: never setuid, setgid or sticky. */
export const MODE_MASK = 0o777;

/** A stored file as `list` reports it. */
export interface FileEntry {
  /** Stored name. */
  name: string;
  /** Size in bytes. */
  size: number;
  /** Whole-file SHA-256, lowercase hex. */
  sha256: string;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
  /** Permission bits (`0o644`), when the server reports them. */
  mode?: number;
  /**
   * The stored bytes no longer match `sha256` (found by a re-hash): the
   * server refuses to serve the file until it is sent again.
   */
  damaged?: boolean;
}

/** A stored folder as `list` reports it, so `get` can recreate empty ones. */
export interface DirEntry {
  /** Relative path, e.g. `photos/2024`. */
  name: string;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
  /** Permission bits (`0o755`). */
  mode: number;
}

/** Compression modes a `get` may ask for: `auto` is zstd where it pays. */
export const COMPRESSION_MODES = ["auto", "zstd", "gzip", "none"] as const;

/** One of {@linkcode COMPRESSION_MODES}. */
export type CompressionMode = typeof COMPRESSION_MODES[number];

/** What every `put` carries: the file's identity and how it is cut. */
export interface PutFields {
  /** Always `"put"`. */
  type: "put";
  /** The name to store the file under: a relative path. */
  name: string;
  /** The file's size in bytes. */
  size: number;
  /** Bytes per chunk (the last chunk may be shorter). */
  chunkSize: number;
  /** The file's modification time, ms since the epoch; part of its identity for resume. */
  mtimeMs: number;
  /** Repair rounds the sender allows. */
  maxRetries: number;
  /** Permission bits to give the stored file. */
  mode?: number;
}

/**
 * An upload request: ordinary (the server answers `ready`, then chunks,
 * `done` and repair rounds follow) or eager (pipelined, at most one chunk).
 */
export type PutMessage =
  | PutFields & {
    eager?: false;
    /** The file's digest when the sender already knows it: a server holding that file answers `verified` at once. */
    sha256?: string;
    /** The sender serves an early `nack` (round 0) during its first round. */
    earlyNack?: boolean;
    /**
     * The sender adds parity frames for groups of this many chunks; the
     * receiver rebuilds from them and sends `loss` reports.
     */
    fecK?: number;
  }
  | PutFields & {
    /**
     * Pipelined upload of a file of at most one chunk: its one data frame
     * (none for an empty file) follows at once, without waiting for `ready`,
     * and no `done`. The server answers `verified`, or `nack` with round 0
     * ("failed, send it again the normal way"), or `error`, and goes on
     * with the next request.
     */
    eager: true;
    /** The client-chosen id of the data frame and the reply. */
    transferId: number;
    /** The file's digest, checked before it is stored. */
    sha256: string;
  };

/** A download request. */
export type GetMessage =
  & {
    type: "get";
    name: string;
    /** How the server should compress chunks. @default "none" */
    compress?: CompressionMode;
  }
  & (
    | {
      eager?: false;
      maxRetries?: number;
      /**
       * Parity wanted on the way: `auto` (added when loss is reported,
       * sized to it) or `K+M`. Only to a server whose hello lists `fec`.
       */
      fec?: string;
    }
    | {
      /**
       * A file of at most one chunk, wanted at once: the server answers with
       * its `offer` and data frame back to back and waits for nothing, so a
       * tree's small files stream; the client checks the bytes against the
       * offer's SHA-256 and gets a file that fails the ordinary way. A larger
       * file is refused with `bad_request`.
       */
      eager: true;
    }
  );

/** Control messages: a discriminated union on `type`. */
export type ControlMessage =
  | {
    type: "hello";
    version: number;
    agent: string;
    /** Server only: the chunk size clients should use (they may use four times it for compressible files). */
    chunkSize?: number;
    /** Server only: answer with `auth` before any request. */
    challenge?: string;
    /** Optional abilities this side understands (see `FEATURE`); unknown ones are ignored. */
    features?: string[];
  }
  | { type: "auth"; proof: string }
  | { type: "authorized" }
  | PutMessage
  | GetMessage
  | {
    type: "offer";
    transferId: number;
    name: string;
    size: number;
    chunkSize: number;
    sha256: string;
    mtimeMs: number;
    /** Permission bits of the stored file. */
    mode?: number;
    /** The sender serves an early `nack` (round 0) during its first round. */
    earlyNack?: boolean;
    /** The sender adds parity frames for groups of this many chunks. */
    fecK?: number;
  }
  | { type: "ready"; transferId: number; have: string; verifyPart?: boolean }
  | {
    /**
     * The receiver's count of data chunks lost or damaged on the way (before
     * any rebuild) among those received, since its last report: sent once
     * per group during the first round when parity was announced, so the
     * sender can size its parity to the loss (`fec` auto).
     */
    type: "loss";
    transferId: number;
    lost: number;
    received: number;
  }
  | { type: "sums"; transferId: number; crc32: string }
  | { type: "done"; transferId: number; sha256: string }
  | {
    /**
     * Chunks the receiver still misses. In answer to `done`, `round` counts
     * repair rounds from 1. During the first round, when the sender said
     * `earlyNack`, round 0 asks for overdue chunks at once: the sender sends
     * them (one copy each, each chunk at most once) between later chunks,
     * and ignores one that reaches it after its `done`.
     */
    type: "nack";
    transferId: number;
    seqs: number[];
    round: number;
  }
  | {
    type: "verified";
    transferId: number;
    sha256: string;
    bytes: number;
    /** The receiver already held this file whole: nothing was stored. */
    held?: boolean;
  }
  | {
    /**
     * Creates a folder (and its parents) and sets its mode and mtime;
     * answered like an eager put, by `verified` (empty `sha256`) or `error`.
     */
    type: "mkdir";
    transferId: number;
    name: string;
    mode: number;
    mtimeMs: number;
  }
  | {
    type: "list";
    /** Only the file or folder of this name and what lies under it. */
    prefix?: string;
    /** Skip this many entries (files, then folders): the `next` of the previous page. */
    offset?: number;
  }
  | {
    type: "listing";
    files: FileEntry[];
    /** Folders, when there are any (each one, so empty ones can be recreated). */
    dirs?: DirEntry[];
    /** More entries follow: ask again with this `offset`. */
    next?: number;
  }
  | { type: "error"; code: ErrorCode; message: string };

/** The `type` of a control message. */
export type ControlType = ControlMessage["type"];

/** A control message narrowed to one `type`. */
export type ControlOf<T extends ControlType> = Extract<
  ControlMessage,
  { type: T }
>;

/** Field checks: "number" is a non-negative safe integer, "integer" any safe integer. */
type FieldKind = "number" | "integer" | "string" | "object" | "boolean";

const CONTROL_FIELDS: { [T in ControlType]: Record<string, FieldKind> } = {
  hello: { version: "number", agent: "string" },
  auth: { proof: "string" },
  authorized: {},
  put: {
    name: "string",
    size: "number",
    chunkSize: "number",
    mtimeMs: "integer",
    maxRetries: "number",
  },
  get: { name: "string" },
  offer: {
    transferId: "number",
    name: "string",
    size: "number",
    chunkSize: "number",
    sha256: "string",
    mtimeMs: "integer",
  },
  ready: { transferId: "number", have: "string" },
  sums: { transferId: "number", crc32: "string" },
  loss: { transferId: "number", lost: "number", received: "number" },
  done: { transferId: "number", sha256: "string" },
  nack: { transferId: "number", seqs: "object", round: "number" },
  verified: { transferId: "number", sha256: "string", bytes: "number" },
  mkdir: {
    transferId: "number",
    name: "string",
    mode: "number",
    mtimeMs: "integer",
  },
  list: {},
  listing: { files: "object" },
  error: { code: "string", message: "string" },
};

/** Optional fields: checked only when present. */
const OPTIONAL_FIELDS: { [T in ControlType]?: Record<string, FieldKind> } = {
  hello: { chunkSize: "number", challenge: "string", features: "object" },
  get: {
    maxRetries: "number",
    compress: "string",
    eager: "boolean",
    fec: "string",
  },
  put: {
    sha256: "string",
    mode: "number",
    eager: "boolean",
    transferId: "number",
    earlyNack: "boolean",
    fecK: "number",
  },
  offer: { mode: "number", earlyNack: "boolean", fecK: "number" },
  ready: { verifyPart: "boolean" },
  verified: { held: "boolean" },
  list: { prefix: "string", offset: "number" },
  listing: { dirs: "object", next: "number" },
};

const FILE_ENTRY_FIELDS: Record<string, FieldKind> = {
  name: "string",
  size: "number",
  sha256: "string",
  mtimeMs: "integer",
};

const DIR_ENTRY_FIELDS: Record<string, FieldKind> = {
  name: "string",
  mtimeMs: "integer",
  mode: "number",
};

function fieldProblem(
  record: Record<string, unknown>,
  fields: Record<string, FieldKind>,
  optional: boolean,
): string | undefined {
  for (const [field, expected] of Object.entries(fields)) {
    const actual = record[field];
    if (optional && actual === undefined) continue;
    const ok = expected === "number"
      ? Number.isSafeInteger(actual) && (actual as number) >= 0
      : expected === "integer"
      ? Number.isSafeInteger(actual)
      : typeof actual === expected && actual !== null;
    if (!ok) {
      return `field "${field}" must be ${
        expected === "number"
          ? "a non-negative integer"
          : expected === "integer"
          ? "an integer"
          : `a ${expected}`
      }`;
    }
  }
  return undefined;
}

/** Parses and shape-checks the JSON of a control message. */
export function parseControl(json: Uint8Array): ControlMessage {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(json));
  } catch (cause) {
    throw new ProtocolError("Cannot parse control message: not UTF-8 JSON", {
      cause,
    });
  }
  if (!isRecord(value)) {
    throw new ProtocolError("Cannot parse control message: not an object");
  }
  const type = value.type;
  if (typeof type !== "string" || !Object.hasOwn(CONTROL_FIELDS, type)) {
    throw new ProtocolError(
      `Cannot parse control message: unknown type ${JSON.stringify(type)}`,
    );
  }
  const problem =
    fieldProblem(value, CONTROL_FIELDS[type as ControlType], false) ??
      fieldProblem(value, OPTIONAL_FIELDS[type as ControlType] ?? {}, true);
  if (problem) {
    throw new ProtocolError(`Cannot parse "${type}" message: ${problem}`);
  }
  if (type === "nack") checkSeqList(value.seqs);
  if (value.fecK !== undefined) checkFecK(value.fecK);
  if (type === "hello" && value.features !== undefined) {
    checkFeatures(value.features);
  }
  if (type === "put" && value.eager === true) checkEagerPut(value);
  if (type === "get" && value.compress !== undefined) {
    checkCompression(value.compress);
  }
  if (type === "get" && value.fec !== undefined) checkFec(value.fec);
  if (type === "listing") {
    checkEntryList(value.files, "files", FILE_ENTRY_FIELDS, {
      mode: "number",
      damaged: "boolean",
    });
    if (value.dirs !== undefined) {
      checkEntryList(value.dirs, "dirs", DIR_ENTRY_FIELDS, {});
    }
  }
  return value as ControlMessage;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkEntryList(
  entries: unknown,
  field: string,
  fields: Record<string, FieldKind>,
  optional: Record<string, FieldKind>,
): void {
  if (!Array.isArray(entries)) {
    throw new ProtocolError(
      `Cannot parse "listing" message: "${field}" must be a list`,
    );
  }
  for (const [index, entry] of entries.entries()) {
    const problem = isRecord(entry)
      ? fieldProblem(entry, fields, false) ??
        fieldProblem(entry, optional, true)
      : "entry must be an object";
    if (problem) {
      throw new ProtocolError(
        `Cannot parse "listing" message: ${
          field === "files" ? "file" : "folder"
        } ${index}: ${problem}`,
      );
    }
  }
}

function checkSeqList(seqs: unknown): void {
  if (
    !Array.isArray(seqs) ||
    !seqs.every((seq) => Number.isSafeInteger(seq) && seq >= 0)
  ) {
    throw new ProtocolError(
      'Cannot parse "nack" message: "seqs" must be a list of sequence numbers',
    );
  }
}

/** Adapts a byte `ReadableStream` into a {@linkcode ByteSource}. */

/** An eager put names its transfer and digest, and holds at most one chunk. */
function checkEagerPut(put: Record<string, unknown>): void {
  if (put.transferId === undefined || put.sha256 === undefined) {
    throw new ProtocolError(
      'Cannot parse "put" message: an eager put needs a transferId and a sha256',
    );
  }
  if ((put.size as number) > (put.chunkSize as number)) {
    throw new ProtocolError(
      'Cannot parse "put" message: an eager put holds at most one chunk',
    );
  }
}

function checkCompression(mode: unknown): void {
  if (!COMPRESSION_MODES.some((known) => known === mode)) {
    throw new ProtocolError(
      `Cannot parse "get" message: unknown compression ${
        JSON.stringify(mode)
      } (use ${COMPRESSION_MODES.join(", ")})`,
    );
  }
}

/** A hello's `features`: a short list of short strings. */
function checkFeatures(features: unknown): void {
  if (
    !Array.isArray(features) || features.length > 64 ||
    !features.every((f) => typeof f === "string" && f.length <= 64)
  ) {
    throw new ProtocolError(
      'Cannot parse "hello" message: "features" must be a list of names',
    );
  }
}

/** Parity groups hold 1 to 254 data chunks (a group and its parity fit in 255 shards). */
function checkFecK(k: unknown): void {
  if (!Number.isSafeInteger(k) || (k as number) < 1 || (k as number) > 254) {
    throw new ProtocolError(
      'Cannot parse message: "fecK" must be a whole number from 1 to 254',
    );
  }
}

/** A `get`'s `fec`: `off`, `auto` or `K+M`. */
function checkFec(fec: unknown): void {
  if (typeof fec !== "string" || !/^(off|auto|\d{1,3}\+\d{1,3})$/.test(fec)) {
    throw new ProtocolError(
      `Cannot parse "get" message: "fec" must be off, auto or K+M, got ${
        JSON.stringify(fec)
      }`,
    );
  }
}
