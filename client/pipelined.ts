/**
 * The client's pipelined requests, for trees of many small files: eager
 * puts, eager gets and `mkdir`, written back to back within a window while
 * their replies are read in order (see `net/pipeline.ts`). Each reply is
 * handed to its request's callback as a tagged result; anything that breaks
 * the protocol throws and ends the connection.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  ERROR_CODE,
  ProtocolError,
  type Refusal,
  refusal,
} from "../base/errors.ts";
import { ChunkCompressor, decodeChunk } from "../engine/compression.ts";
import type { FramedConnection } from "../net/connection.ts";
import { Pipeline } from "../net/pipeline.ts";
import type { RateLimiter } from "../net/rate_limit.ts";
import {
  type CompressionMode,
  type ControlMessage,
  type ControlOf,
  type DataFrame,
  encodeControl,
  encodeData,
} from "../protocol.ts";

/** A small file, read whole, to send in one eager put. */
export interface SmallFile {
  /** Its name on the server. */
  name: string;
  /** Its bytes: at most one chunk. */
  bytes: Uint8Array;
  /** Their SHA-256, lowercase hex. */
  sha256: string;
  /** Permission bits. */
  mode: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
}

/** What the server answered to an eager put. */
export type EagerPutReply =
  | { kind: "verified"; held: boolean }
  /** Damaged on the way, or busy: send it again the ordinary way. */
  | { kind: "again" }
  | { kind: "refused"; refusal: Refusal };

/** What an eager get brought. */
export type EagerGetReply =
  | { kind: "got"; offer: ControlOf<"offer">; bytes: Uint8Array }
  /** Damaged on the way: get it again the ordinary way. */
  | { kind: "again" }
  | { kind: "refused"; refusal: Refusal };

/** What the server answered to a `mkdir`. */
export type FolderReply =
  | { kind: "made" }
  | { kind: "refused"; refusal: Refusal };

/** Settings of a pipeline of eager requests. */
export interface PipelinedOptions {
  /** How chunks are compressed on the wire. */
  compression: CompressionMode;
  /** Paces the bytes written. */
  limiter?: RateLimiter;
}

type Reply = Extract<ControlMessage, { type: "verified" | "nack" | "error" }>;

/** Eager puts of small files, pipelined. */
export class EagerUploads {
  #pipe: Pipeline<Reply>;
  #compressor: ChunkCompressor;
  #chunkSize: number;
  #nextId: () => number;

  /** Uploads over `fc` in chunks of `chunkSize`, with ids from `nextId`. */
  constructor(
    fc: FramedConnection,
    chunkSize: number,
    nextId: () => number,
    options: PipelinedOptions,
  ) {
    this.#pipe = new Pipeline(fc, options.limiter, readReply);
    this.#compressor = new ChunkCompressor(options.compression);
    this.#chunkSize = chunkSize;
    this.#nextId = nextId;
  }

  /** Queues `file`; `settle` is told the server's answer. Waits while the window is full. */
  push(file: SmallFile, settle: (reply: EagerPutReply) => void): Promise<void> {
    if (file.bytes.length > this.#chunkSize) {
      throw new RangeError(
        `Cannot send ${file.name} eagerly: ${file.bytes.length} bytes is more than one chunk`,
      );
    }
    const transferId = this.#nextId();
    const frames = [encodeControl({
      type: "put",
      name: file.name,
      size: file.bytes.length,
      chunkSize: this.#chunkSize,
      mtimeMs: file.mtimeMs,
      maxRetries: 0,
      sha256: file.sha256,
      mode: file.mode,
      eager: true,
      transferId,
    })];
    if (file.bytes.length > 0) {
      const wire = this.#compressor.encode(file.bytes);
      frames.push(encodeData(transferId, 0, wire.payload, wire.flags));
    }
    return this.#pipe.push(frames, file.bytes.length, (reply) => {
      if (reply.type === "verified") {
        settle({ kind: "verified", held: reply.held === true });
      } else if (reply.type === "nack" || reply.code === ERROR_CODE.busy) {
        settle({ kind: "again" });
      } else {
        settle({
          kind: "refused",
          refusal: refusal(reply.code, reply.message),
        });
      }
    });
  }

  /** Writes what is batched and waits for every reply. */
  finish(): Promise<void> {
    return this.#pipe.finish();
  }
}

/** `mkdir` requests, pipelined. */
export class FolderRequests {
  #pipe: Pipeline<Reply>;
  #nextId: () => number;

  /** Makes folders over `fc`, with ids from `nextId`. */
  constructor(
    fc: FramedConnection,
    nextId: () => number,
    options: { limiter?: RateLimiter },
  ) {
    this.#pipe = new Pipeline(fc, options.limiter, readReply);
    this.#nextId = nextId;
  }

  /** Queues the folder `dir`; `settle` is told the server's answer. */
  push(
    dir: { name: string; mode: number; mtimeMs: number },
    settle: (reply: FolderReply) => void,
  ): Promise<void> {
    const frame = encodeControl({
      type: "mkdir",
      transferId: this.#nextId(),
      name: dir.name,
      mode: dir.mode,
      mtimeMs: dir.mtimeMs,
    });
    return this.#pipe.push([frame], 0, (reply) => {
      if (reply.type === "verified") return settle({ kind: "made" });
      if (reply.type === "error") {
        return settle({
          kind: "refused",
          refusal: refusal(reply.code, reply.message),
        });
      }
      throw new ProtocolError(
        `Cannot make folder ${dir.name}: unexpected "${reply.type}" reply`,
      );
    });
  }

  /** Writes what is batched and waits for every reply. */
  finish(): Promise<void> {
    return this.#pipe.finish();
  }
}

/** Eager gets of small files, pipelined; each file is checked before it is handed on. */
export class EagerDownloads {
  #pipe: Pipeline<RawGot>;
  #compression: CompressionMode;

  /** Downloads over `fc`. */
  constructor(fc: FramedConnection, options: { compression: CompressionMode }) {
    this.#pipe = new Pipeline(fc, undefined, readEagerGot);
    this.#compression = options.compression;
  }

  /**
   * Asks for the file `name` (`size` bytes expected, for the window);
   * `settle` gets its bytes once their CRC and SHA-256 match the offer.
   */
  push(
    name: string,
    size: number,
    settle: (reply: EagerGetReply) => void,
  ): Promise<void> {
    const request = encodeControl({
      type: "get",
      name,
      compress: this.#compression,
      eager: true,
    });
    return this.#pipe.push([request], size, (got) => settle(checkGot(got)));
  }

  /** Writes what is batched and waits for every reply. */
  finish(): Promise<void> {
    return this.#pipe.finish();
  }
}

/** Reads the reply to an eager put or a `mkdir`. */
async function readReply(fc: FramedConnection): Promise<Reply> {
  const reply = await fc.nextControl();
  if (
    reply.type !== "verified" && reply.type !== "nack" &&
    reply.type !== "error"
  ) {
    throw new ProtocolError(
      `Cannot continue the upload: unexpected "${reply.type}" reply`,
    );
  }
  return reply;
}

/** The answer to an eager get as read: the offer and its data frame (none for an empty file), or an error. */
type RawGot =
  | { offer: ControlOf<"offer">; frame?: DataFrame }
  | ControlOf<"error">;

/** Reads the answer to an eager get. */
async function readEagerGot(fc: FramedConnection): Promise<RawGot> {
  const reply = await fc.nextControl();
  if (reply.type === "error") return reply;
  if (reply.type !== "offer") {
    throw new ProtocolError(
      `Cannot continue the download: unexpected "${reply.type}" reply`,
    );
  }
  if (reply.size === 0) return { offer: reply };
  const frame = await fc.next();
  if (frame === null || frame.kind !== "data") {
    throw new ProtocolError(
      `Cannot continue the download: no data for ${JSON.stringify(reply.name)}`,
    );
  }
  return { offer: reply, frame };
}

/** The file an eager get brought, when its bytes are whole and match the offer's digest. */
function checkGot(got: RawGot): EagerGetReply {
  if (!("offer" in got)) {
    return { kind: "refused", refusal: refusal(got.code, got.message) };
  }
  const { offer, frame } = got;
  let bytes: Uint8Array = new Uint8Array(0);
  if (frame) {
    if (!frame.intact || frame.transferId !== offer.transferId) {
      return { kind: "again" };
    }
    try {
      bytes = decodeChunk(frame.payload, frame.flags, offer.size);
    } catch {
      return { kind: "again" };
    }
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  return sha256 === offer.sha256
    ? { kind: "got", offer, bytes }
    : { kind: "again" };
}
