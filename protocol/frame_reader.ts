/**
 * Reading ftv/1 frames from a byte source: the length prefix is checked
 * against the caps before anything is allocated, large bodies go into
 * recycled buffers, and a truncated or malformed frame is a
 * `ProtocolError`. Also a `TransformStream`-shaped decoder for Web Streams.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { ProtocolError } from "../base/errors.ts";
import {
  DATA_HEADER_BYTES,
  FRAME_KIND,
  FRAME_PREFIX_BYTES,
  MAX_CONTROL_BYTES,
  MAX_FRAME_BYTES,
} from "./frames.ts";
import { type ControlMessage, parseControl } from "./messages.ts";

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

  /**
   * A copy of up to `max` bytes read but not yet decoded: after a refused
   * frame header, what the peer sent in its place.
   */
  peek(max: number): Uint8Array {
    return this.#buffer.slice(
      this.#start,
      Math.min(this.#end, this.#start + max),
    );
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

/**
 * Whether `bytes` start like a TLS record (content type 20 to 23, major
 * version 3): a TLS peer where plain ftv/1 was expected.
 */
export function isTlsRecord(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0]! >= 0x14 && bytes[0]! <= 0x17 &&
    bytes[1] === 3;
}

/** Throws a `ProtocolError` unless `length` and `kind` start an ftv/1 frame. */
function checkFrameHeader(length: number, kind: number | undefined): void {
  const problem = frameHeaderProblem(length, kind);
  if (problem === undefined) return;
  // No TLS record header passes as a frame header, so this costs only failures.
  const tls = isTlsRecord(Uint8Array.of(length >>> 24, length >>> 16 & 0xff));
  throw new ProtocolError(
    tls
      ? "Cannot read frame: the peer speaks TLS (use --tls on both sides)"
      : problem,
  );
}

function frameHeaderProblem(
  length: number,
  kind: number | undefined,
): string | undefined {
  if (kind === FRAME_KIND.control) {
    if (length < 1 + 4 + 2 || length > 1 + 4 + MAX_CONTROL_BYTES) {
      return `Cannot accept control frame: length ${length} is outside 7..${
        5 + MAX_CONTROL_BYTES
      }`;
    }
  } else if (kind === FRAME_KIND.data) {
    if (length < 1 + DATA_HEADER_BYTES || length > MAX_FRAME_BYTES) {
      return `Cannot accept data frame: length ${length} is outside ${
        1 + DATA_HEADER_BYTES
      }..${MAX_FRAME_BYTES}`;
    }
  } else {
    return `Cannot accept frame: unknown kind ${kind}`;
  }
  return undefined;
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
