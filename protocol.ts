/**
 * The ftv/1 wire format: length-prefixed frames carrying either a JSON control
 * message or a binary data chunk, each protected by a CRC-32.
 *
 * Frame: `u32 length` (big-endian, counts what follows) + `u8 kind` + body.
 * - CONTROL body: `u32 crc32(json)` + UTF-8 JSON of a {@linkcode ControlMessage}.
 * - DATA body: `u32 transferId` + `u32 seq` + `u8 flags` + `u32 crc32` + payload,
 *   where the CRC covers the nine bytes before it and the payload.
 *
 * Pure: no `Deno.*` here; sockets live in `connection.ts`.
 *
 * @module
 */

import { type ErrorCode, ProtocolError } from "./base/errors.ts";
import { crc32 } from "node:zlib";

/** Version spoken in `hello`; a peer with another version gets an error. */
export const PROTOCOL_VERSION = 1;

/** Frame kinds on the wire. */
export const FRAME_KIND = { control: 1, data: 2 } as const;

/** Largest chunk payload a peer may announce or send. */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
/** Most entries (files and folders) in one `listing`, so it stays under the control cap. */
export const LISTING_PAGE_ENTRIES = 10_000;
/** Largest JSON control message accepted. */
export const MAX_CONTROL_BYTES = 4 * 1024 * 1024;
/** Bytes of a data frame body before the payload. */
export const DATA_HEADER_BYTES = 13;
/** Largest value the length prefix may carry; checked before allocating. */
export const MAX_FRAME_BYTES = 1 + DATA_HEADER_BYTES + MAX_CHUNK_BYTES;
/** Bytes in front of every frame body: the length prefix and the kind. */
export const FRAME_PREFIX_BYTES = 5;

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
  }
  | { type: "auth"; proof: string }
  | { type: "authorized" }
  | {
    type: "put";
    name: string;
    size: number;
    chunkSize: number;
    mtimeMs: number;
    maxRetries: number;
    /** The file's digest when the sender already knows it: a server holding that file answers `verified` at once. */
    sha256?: string;
    /** Permission bits to give the stored file. */
    mode?: number;
    /**
     * Pipelined upload of a file of at most one chunk: its one data frame
     * (none for an empty file) follows at once, without waiting for `ready`,
     * and no `done` (`sha256` is in the put). The server answers `verified`,
     * or `nack` with round 0 ("failed, send it again the normal way"), or
     * `error`, and goes on with the next request. Needs `transferId` (chosen
     * by the client) and `sha256`.
     */
    eager?: boolean;
    /** The client-chosen id of an eager put's data frames and replies. */
    transferId?: number;
    /** The sender serves an early `nack` (round 0) during its first round. */
    earlyNack?: boolean;
  }
  | {
    type: "get";
    name: string;
    maxRetries?: number;
    /** How the server should compress chunks: auto, zstd, gzip or none. */
    compress?: string;
    /**
     * A file of at most one chunk, wanted at once: the server answers with
     * its `offer` and data frame back to back and waits for nothing, so a
     * tree's small files stream; the client checks the bytes against the
     * offer's SHA-256 and gets a file that fails the ordinary way. A larger
     * file is refused with `bad_request`.
     */
    eager?: boolean;
  }
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
  }
  | { type: "ready"; transferId: number; have: string; verifyPart?: boolean }
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

/** A decoded data frame. */
export interface DataFrame {
  /** Always `"data"`. */
  kind: "data";
  /** The transfer the chunk belongs to. */
  transferId: number;
  /** The chunk's sequence number. */
  seq: number;
  /** Frame flags (0 in ftv/1). */
  flags: number;
  /** False when the CRC did not match: the chunk must be asked for again. */
  intact: boolean;
  /** The chunk's bytes. */
  payload: Uint8Array;
}

/** A decoded frame: a control message or a data chunk. */
export type Frame = { kind: "control"; message: ControlMessage } | DataFrame;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Encodes a control message as one complete frame. */
export function encodeControl(message: ControlMessage): Uint8Array {
  const json = encoder.encode(JSON.stringify(message));
  if (json.length > MAX_CONTROL_BYTES) {
    throw new RangeError(
      `Cannot encode "${message.type}": ${json.length} bytes exceeds the ${MAX_CONTROL_BYTES}-byte control limit`,
    );
  }
  const frame = new Uint8Array(FRAME_PREFIX_BYTES + 4 + json.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 1 + 4 + json.length);
  frame[4] = FRAME_KIND.control;
  view.setUint32(5, crc32(json));
  frame.set(json, 9);
  return frame;
}

/** Bytes a data frame takes before its payload. */
export const DATA_FRAME_OVERHEAD = FRAME_PREFIX_BYTES + DATA_HEADER_BYTES;

/**
 * Allocates a data frame with room for `payloadLength` bytes at offset
 * {@linkcode DATA_FRAME_OVERHEAD}, so a file can be read straight into it.
 * Call {@linkcode sealDataFrame} once the payload is in place.
 */
export function allocDataFrame(payloadLength: number): Uint8Array {
  if (payloadLength > MAX_CHUNK_BYTES) {
    throw new RangeError(
      `Cannot allocate a data frame: ${payloadLength} bytes exceeds ${MAX_CHUNK_BYTES}`,
    );
  }
  return new Uint8Array(DATA_FRAME_OVERHEAD + payloadLength);
}

/** Writes the header and CRC of a data frame whose payload is already in place. */
export function sealDataFrame(
  frame: Uint8Array,
  transferId: number,
  seq: number,
  flags = 0,
): Uint8Array {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  view.setUint32(0, frame.length - 4);
  frame[4] = FRAME_KIND.data;
  view.setUint32(5, transferId);
  view.setUint32(9, seq);
  frame[13] = flags;
  const headerCrc = crc32(frame.subarray(5, 14));
  view.setUint32(14, crc32(frame.subarray(DATA_FRAME_OVERHEAD), headerCrc));
  return frame;
}

/** Encodes a data frame from a payload (copies it; the sender uses {@linkcode allocDataFrame}). */
export function encodeData(
  transferId: number,
  seq: number,
  payload: Uint8Array,
  flags = 0,
): Uint8Array {
  const frame = allocDataFrame(payload.length);
  frame.set(payload, DATA_FRAME_OVERHEAD);
  return sealDataFrame(frame, transferId, seq, flags);
}

/** Bodies at least this large are read into pooled buffers. */
const POOLED_BODY_BYTES = 64 * 1024;

/**
 * Recycles large frame buffers. A fresh 1 MiB buffer per chunk costs the
 * kernel a page fault per 4 KiB to map and zero it, which measured here as a
 * large share of the receiver's CPU; a few reused buffers cost nothing.
 */
export class BufferPool {
  #free: ArrayBuffer[] = [];
  #freeBytes = 0;
  #maxBytes: number;

  /** A pool keeping at most `maxBytes` in idle buffers. */
  constructor(maxBytes = 16 * 1024 * 1024) {
    this.#maxBytes = maxBytes;
  }

  /** A buffer of exactly `n` bytes, recycled when one is free. */
  take(n: number): Uint8Array {
    const index = this.#free.findIndex((buffer) => buffer.byteLength >= n);
    if (index < 0) return new Uint8Array(n);
    const buffer = this.#free.splice(index, 1)[0]!;
    this.#freeBytes -= buffer.byteLength;
    return new Uint8Array(buffer, 0, n);
  }

  /** Gives back a buffer from {@linkcode take} (or any view of it); it must not be used again. */
  give(view: Uint8Array): void {
    const buffer = view.buffer as ArrayBuffer;
    if (
      this.#freeBytes + buffer.byteLength <= this.#maxBytes &&
      !this.#free.includes(buffer)
    ) {
      this.#free.push(buffer);
      this.#freeBytes += buffer.byteLength;
    }
  }
}

/** Anything frames can be read from: `Deno.Conn` fits, so does {@linkcode streamSource}. */
export interface ByteSource {
  read(p: Uint8Array): Promise<number | null>;
}

/**
 * Reads frames one at a time from a {@linkcode ByteSource}, buffering small
 * reads and reading large payloads straight into their own buffer.
 */
export class FrameReader {
  #source: ByteSource;
  #buffer: Uint8Array;
  #pool: BufferPool | undefined;
  #start = 0;
  #end = 0;

  /**
   * Wraps a source; `bufferSize` is the read-ahead for headers and small
   * frames. With a `pool`, large frame bodies are read into recycled buffers:
   * whoever receives such a frame gives its payload back with
   * {@linkcode BufferPool.give} once done with it.
   */
  constructor(
    source: ByteSource,
    bufferSize = 256 * 1024,
    pool?: BufferPool,
  ) {
    this.#source = source;
    this.#buffer = new Uint8Array(bufferSize);
    this.#pool = pool;
  }

  /** Bytes read from the source but not yet handed out as frames. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Whether the next frame is already wholly buffered: reading it needs no I/O. */
  get hasFrame(): boolean {
    if (this.#end - this.#start < FRAME_PREFIX_BYTES) return false;
    const length = (this.#buffer[this.#start]! << 24 |
      this.#buffer[this.#start + 1]! << 16 |
      this.#buffer[this.#start + 2]! << 8 | this.#buffer[this.#start + 3]!) >>>
      0;
    return this.#end - this.#start >= FRAME_PREFIX_BYTES - 1 + length;
  }

  /** Resolves to the next frame, or `null` at a clean end of stream. */
  async next(): Promise<Frame | null> {
    if (!(await this.#fill(FRAME_PREFIX_BYTES, true))) return null;
    const view = new DataView(this.#buffer.buffer);
    const length = view.getUint32(this.#start);
    const kind = this.#buffer[this.#start + 4];
    checkFrameHeader(length, kind);
    this.#start += FRAME_PREFIX_BYTES;
    const body = await this.#readExact(length - 1);
    return decodeBody(kind!, body);
  }

  /** Ensures `n` bytes are buffered; false at end of stream before any byte when `atBoundary`. */
  async #fill(n: number, atBoundary: boolean): Promise<boolean> {
    if (this.#end - this.#start >= n) return true;
    if (this.#buffer.length - this.#start < n) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.#end - this.#start < n) {
      const got = await this.#source.read(this.#buffer.subarray(this.#end));
      if (got === null) {
        if (atBoundary && this.#end === this.#start) return false;
        throw new ProtocolError(
          `Cannot read frame: stream ended after ${
            this.#end - this.#start
          } of ${n} bytes`,
        );
      }
      this.#end += got;
    }
    return true;
  }

  async #readExact(n: number): Promise<Uint8Array> {
    const out = this.#pool && n >= POOLED_BODY_BYTES
      ? this.#pool.take(n)
      : new Uint8Array(n);
    const fromBuffer = Math.min(n, this.#end - this.#start);
    out.set(this.#buffer.subarray(this.#start, this.#start + fromBuffer));
    this.#start += fromBuffer;
    let filled = fromBuffer;
    while (filled < n) {
      const got = await this.#source.read(out.subarray(filled));
      if (got === null) {
        throw new ProtocolError(
          `Cannot read frame: stream ended after ${filled} of ${n} body bytes`,
        );
      }
      filled += got;
    }
    return out;
  }
}

function checkFrameHeader(length: number, kind: number | undefined): void {
  if (
    length >>> 24 >= 0x14 && length >>> 24 <= 0x17 &&
    (length >>> 16 & 0xff) === 3
  ) {
    throw new ProtocolError(
      "Cannot read frame: the peer speaks TLS (use --tls on both sides)",
    );
  }
  if (kind === FRAME_KIND.control) {
    if (length < 1 + 4 + 2 || length > 1 + 4 + MAX_CONTROL_BYTES) {
      throw new ProtocolError(
        `Cannot accept control frame: length ${length} is outside 7..${
          5 + MAX_CONTROL_BYTES
        }`,
      );
    }
  } else if (kind === FRAME_KIND.data) {
    if (length < 1 + DATA_HEADER_BYTES || length > MAX_FRAME_BYTES) {
      throw new ProtocolError(
        `Cannot accept data frame: length ${length} is outside ${
          1 + DATA_HEADER_BYTES
        }..${MAX_FRAME_BYTES}`,
      );
    }
  } else {
    throw new ProtocolError(`Cannot accept frame: unknown kind ${kind}`);
  }
}

function decodeBody(kind: number, body: Uint8Array): Frame {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  if (kind === FRAME_KIND.control) {
    const json = body.subarray(4);
    if (view.getUint32(0) !== crc32(json)) {
      throw new ProtocolError("Cannot accept control frame: CRC mismatch");
    }
    return { kind: "control", message: parseControl(json) };
  }
  const payload = body.subarray(DATA_HEADER_BYTES);
  const headerCrc = crc32(body.subarray(0, 9));
  return {
    kind: "data",
    transferId: view.getUint32(0),
    seq: view.getUint32(4),
    flags: body[8]!,
    intact: view.getUint32(9) === crc32(payload, headerCrc),
    payload,
  };
}

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
  hello: { chunkSize: "number", challenge: "string" },
  get: { maxRetries: "number", compress: "string", eager: "boolean" },
  put: {
    sha256: "string",
    mode: "number",
    eager: "boolean",
    transferId: "number",
    earlyNack: "boolean",
  },
  offer: { mode: "number", earlyNack: "boolean" },
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
  if (type === "listing") {
    checkEntryList(value.files, "files", FILE_ENTRY_FIELDS, { mode: "number" });
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
export function streamSource(stream: ReadableStream<Uint8Array>): ByteSource {
  const reader = stream.getReader();
  let pending: Uint8Array | undefined;
  return {
    async read(p: Uint8Array): Promise<number | null> {
      while (!pending || pending.length === 0) {
        const { value, done } = await reader.read();
        if (done) return null;
        pending = value;
      }
      const n = Math.min(p.length, pending.length);
      p.set(pending.subarray(0, n));
      pending = pending.subarray(n);
      return n;
    },
  };
}

/**
 * Decodes a byte stream into frames. Oversized lengths, unknown kinds,
 * malformed control messages and truncated frames error the stream with a
 * {@linkcode ProtocolError}; a data frame with a bad CRC is passed on with
 * `intact: false` so the receiver can ask for it again.
 *
 * @example
 * ```ts
 * import { encodeControl, FrameDecoderStream } from "./protocol.ts";
 * const bytes = ReadableStream.from([encodeControl({ type: "list" })]);
 * for await (const frame of bytes.pipeThrough(new FrameDecoderStream())) {
 *   console.log(frame.kind);
 * }
 * ```
 */
export class FrameDecoderStream {
  /** Frames out. */
  readonly readable: ReadableStream<Frame>;
  /** Bytes in. */
  readonly writable: WritableStream<Uint8Array>;

  /** Creates the decoder; pipe bytes into `writable`, read frames from `readable`. */
  constructor() {
    let input!: TransformStreamDefaultController<Uint8Array>;
    const { readable, writable } = new TransformStream<
      Uint8Array,
      Uint8Array
    >({ start: (controller) => void (input = controller) });
    this.writable = writable;
    const reader = new FrameReader(streamSource(readable));
    this.readable = ReadableStream.from(
      (async function* () {
        let ended = false;
        try {
          for (
            let frame = await reader.next();
            frame;
            frame = await reader.next()
          ) {
            yield frame;
          }
          ended = true;
        } catch (error) {
          // Error the input too, so a pipe into `writable` stops and cancels its source.
          input.error(error);
          throw error;
        } finally {
          if (!ended) {
            input.error(
              new TypeError("Cannot decode frames: the output was cancelled"),
            );
          }
        }
      })(),
    );
  }
}
