/**
 * Moving one file's chunks over a framed connection, the same way in both
 * directions. The sender streams the chunks the receiver lacks, then `done`
 * with the whole-file SHA-256; the receiver checks each chunk's CRC, writes
 * good ones to its {@linkcode ChunkStore}, and answers `nack` with exactly the
 * sequence numbers still missing, or `verified` once the file digest matches.
 * Repair rounds are pipelined: every missing chunk of a round is sent back to
 * back, never one chunk per round trip.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { ChunkBitmap } from "./bitmap.ts";
import {
  bytesHeld,
  chunkCount,
  chunkLength,
  type ChunkStore,
} from "./chunk_store.ts";
import { type FramedConnection, RemoteError } from "./connection.ts";
import {
  ChunkCompressor,
  type CompressionMode,
  decodeChunk,
} from "./compression.ts";
import type { ErrorSimulator } from "./faults.ts";
import type { Logger } from "./log.ts";
import type { RateLimiter } from "./rate_limit.ts";
import {
  allocDataFrame,
  DATA_FRAME_OVERHEAD,
  encodeData,
  ERROR_CODE,
  ProtocolError,
  sealDataFrame,
} from "./protocol.ts";

/** A transfer that ended without a verified file; the message says why. */
export class TransferError extends Error {
  /** Whether starting the transfer again may succeed (e.g. after a digest mismatch). */
  readonly retryable: boolean;
  /** Builds the error; `cause` is passed through. */
  constructor(
    message: string,
    options?: ErrorOptions & { retryable?: boolean },
  ) {
    super(message, options);
    this.name = "TransferError";
    this.retryable = options?.retryable ?? false;
  }
}

/** What one transfer did, as reported by `--json`. */
export interface TransferStats {
  /** Whole-file SHA-256, lowercase hex, as `sha256sum` prints it. */
  sha256: string;
  /** File size in bytes. */
  bytes: number;
  /** Number of chunks. */
  chunks: number;
  /** Chunk frames sent (sender) or received (receiver) in repair rounds. */
  retransmittedChunks: number;
  /** Transmission rounds: 1 plus the repair rounds used. */
  attempts: number;
  /** Bytes this side put on (sender) or took off (receiver) the wire for this transfer. */
  wireBytes: number;
  /** Chunks the receiver already held from an earlier run. */
  resumedChunks: number;
  /** Bytes in those chunks. */
  resumedBytes: number;
}

/** Most copies of one chunk sent in a repair round. */
export const MAX_REPAIR_COPIES = 8;

/**
 * Copies of each missing chunk sent in repair round `round` (1-based): a
 * chunk that keeps failing is sent twice, then four times, so a lossy link
 * converges in a few rounds instead of many.
 */
export function repairCopies(round: number): number {
  return Math.min(MAX_REPAIR_COPIES, 2 ** Math.max(0, round - 1));
}

/** Options for {@linkcode sendChunks}. */
export interface SendChunksOptions {
  /** The transfer's id; when absent, the one in the receiver's `ready` is used. */
  transferId?: number;
  size: number;
  chunkSize: number;
  /** The file's SHA-256 when known; otherwise computed while sending in order. */
  sha256?: string;
  /** Damages outgoing chunks, for the demo and tests. */
  simulator?: ErrorSimulator;
  /** Upper bound on repair rounds this side serves. @default 100 */
  maxRounds?: number;
  /** Paces outgoing chunk bytes. */
  limiter?: RateLimiter;
  /** The digest offered in the request, reported if the receiver already holds the file. */
  knownSha256?: string;
  /** Told the file's digest as soon as it is known, so a retry can offer it. */
  onDigest?: (sha256: string) => void;
  /** How chunks are compressed on the wire. @default "none" */
  compression?: CompressionMode;
  /** Told how many chunks the receiver already holds, once it says so. */
  onReady?: (heldChunks: number) => void;
  log?: Logger;
}

/**
 * Sends a file's chunks until the receiver reports it verified: waits for the
 * receiver's `ready` (which chunks it holds), sends the rest, then serves
 * repair rounds.
 */
export async function sendChunks(
  fc: FramedConnection,
  file: Deno.FsFile,
  options: SendChunksOptions,
): Promise<TransferStats> {
  const { size, chunkSize, simulator, limiter } = options;
  const compressor = options.compression && options.compression !== "none"
    ? new ChunkCompressor(options.compression)
    : undefined;
  const wireStart = fc.bytesSent;
  const count = chunkCount(size, chunkSize);
  const reader = new ChunkReader(file, size, chunkSize);
  const readiness = await awaitReady(fc, options.transferId, reader);
  if (readiness === "verified") {
    return alreadyHeld(size, count, options.knownSha256 ?? "");
  }
  const { transferId, have } = readiness;
  options.onReady?.(have.count);
  let sha256 = options.sha256;
  if (sha256 === undefined && simulator) sha256 = await reader.digest();
  const firstRound = have.missing();
  const order = simulator ? simulator.order(firstRound) : firstRound;
  if (sha256 === undefined) {
    sha256 = await sendInOrderHashing(
      fc,
      reader,
      transferId,
      have,
      limiter,
      compressor,
    );
  } else {
    await sendFrames(
      fc,
      reader,
      transferId,
      order,
      1,
      simulator,
      limiter,
      compressor,
    );
  }
  options.onDigest?.(sha256);
  await fc.send({ type: "done", transferId, sha256 });
  let retransmitted = 0;
  let rounds = 0;
  const maxRounds = options.maxRounds ?? 100;
  for (;;) {
    const reply = await fc.nextControl();
    if (reply.type === "verified" && reply.transferId === transferId) {
      return {
        sha256,
        bytes: size,
        chunks: count,
        retransmittedChunks: retransmitted,
        attempts: rounds + 1,
        wireBytes: fc.bytesSent - wireStart,
        resumedChunks: have.count,
        resumedBytes: bytesHeld(have, size, chunkSize),
      };
    }
    if (reply.type === "error") {
      throw new RemoteError(reply.code, reply.message);
    }
    if (reply.type !== "nack" || reply.transferId !== transferId) {
      throw new ProtocolError(
        `Cannot continue sending: unexpected "${reply.type}" message`,
      );
    }
    rounds++;
    if (rounds > maxRounds) {
      throw new TransferError(
        `Cannot send: receiver still misses chunks after ${maxRounds} repair rounds`,
      );
    }
    // A receiver names each missing chunk once; repeats would let a tiny
    // nack make this side send the same chunk without bound.
    const asked = new Set<number>();
    for (const seq of reply.seqs) {
      if (seq >= count) {
        throw new ProtocolError(
          `Cannot resend chunk ${seq}: the file has ${count} chunks`,
        );
      }
      if (asked.has(seq)) {
        throw new ProtocolError(
          `Cannot resend chunk ${seq}: the nack names it more than once`,
        );
      }
      asked.add(seq);
    }
    const copies = repairCopies(reply.round);
    options.log?.info(
      `Resending ${reply.seqs.length} chunk(s), round ${reply.round}${
        copies > 1 ? `, ${copies} copies each` : ""
      }`,
    );
    const seqs = simulator ? simulator.order(reply.seqs) : reply.seqs;
    retransmitted += await sendFrames(
      fc,
      reader,
      transferId,
      seqs,
      copies,
      simulator,
      limiter,
      compressor,
    );
    await fc.send({ type: "done", transferId, sha256 });
  }
}

/**
 * Waits for the receiver's `ready`. A receiver that lost its resume state
 * asks for every chunk's CRC-32 first, to re-verify its part file.
 */
async function awaitReady(
  fc: FramedConnection,
  expectedId: number | undefined,
  reader: ChunkReader,
): Promise<{ transferId: number; have: ChunkBitmap } | "verified"> {
  const first = await fc.nextControl();
  if (first.type === "verified") return "verified";
  if (first.type === "error") {
    throw new RemoteError(first.code, first.message);
  }
  if (first.type !== "ready") {
    throw new ProtocolError(
      `Cannot start sending: expected "ready", got "${first.type}"`,
    );
  }
  let ready = first;
  const transferId = expectedId ?? ready.transferId;
  if (ready.verifyPart && ready.transferId === transferId) {
    const sums = await reader.checksums();
    await fc.send({ type: "sums", transferId, crc32: encodeChecksums(sums) });
    ready = await fc.expect("ready");
  }
  if (ready.transferId !== transferId || ready.verifyPart) {
    throw new ProtocolError('Cannot start sending: unexpected "ready"');
  }
  return { transferId, have: decodeBitmap(ready.have, reader.count) };
}

/** Stats of a file the receiver already held whole: nothing travelled. */
function alreadyHeld(
  size: number,
  count: number,
  sha256: string,
): TransferStats {
  return {
    sha256,
    bytes: size,
    chunks: count,
    retransmittedChunks: 0,
    attempts: 0,
    wireBytes: 0,
    resumedChunks: count,
    resumedBytes: size,
  };
}

/** Decodes a peer's chunk bitmap; a malformed one is a protocol error. */
export function decodeBitmap(encoded: string, count: number): ChunkBitmap {
  try {
    return ChunkBitmap.fromBase64(encoded, count);
  } catch (cause) {
    throw new ProtocolError("Cannot resume: malformed chunk bitmap", { cause });
  }
}

/** Chunk CRC-32s as base64 of big-endian u32s. */
export function encodeChecksums(sums: Uint32Array): string {
  const bytes = new Uint8Array(sums.length * 4);
  const view = new DataView(bytes.buffer);
  sums.forEach((sum, i) => view.setUint32(i * 4, sum));
  return Buffer.from(bytes).toString("base64");
}

/** The inverse of {@linkcode encodeChecksums}; a wrong count is a protocol error. */
export function decodeChecksums(encoded: string, count: number): Uint32Array {
  const bytes = Buffer.from(encoded, "base64");
  if (bytes.length !== count * 4) {
    throw new ProtocolError(
      `Cannot verify part file: ${bytes.length} checksum bytes for ${count} chunks`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Uint32Array.from({ length: count }, (_, i) => view.getUint32(i * 4));
}

async function sendInOrderHashing(
  fc: FramedConnection,
  reader: ChunkReader,
  transferId: number,
  have: ChunkBitmap,
  limiter: RateLimiter | undefined,
  compressor: ChunkCompressor | undefined,
): Promise<string> {
  const hash = createHash("sha256");
  let next = reader.prefetch(0);
  for (let seq = 0; seq < reader.count; seq++) {
    const frame = await next;
    if (seq + 1 < reader.count) next = reader.prefetch(seq + 1);
    hash.update(frame.subarray(DATA_FRAME_OVERHEAD));
    if (have.has(seq)) continue;
    const wire = wireFrame(frame, transferId, seq, compressor);
    await limiter?.consume(wire.length);
    await fc.write(wire);
  }
  if (reader.count === 0) await next.catch(() => undefined);
  return hash.digest("hex");
}

async function sendFrames(
  fc: FramedConnection,
  reader: ChunkReader,
  transferId: number,
  seqs: readonly number[],
  copies: number,
  simulator: ErrorSimulator | undefined,
  limiter: RateLimiter | undefined,
  compressor: ChunkCompressor | undefined,
): Promise<number> {
  let sent = 0;
  if (seqs.length === 0) return sent;
  let next = reader.prefetch(seqs[0]!);
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    const frame = wireFrame(await next, transferId, seq, compressor);
    if (i + 1 < seqs.length) next = reader.prefetch(seqs[i + 1]!);
    for (let copy = 0; copy < copies; copy++) {
      const fate = simulator?.fate(seq) ?? "deliver";
      if (fate === "lose") continue;
      await limiter?.consume(frame.length);
      if (fate === "corrupt") {
        const damaged = frame.slice();
        simulator!.corrupt(damaged.subarray(DATA_FRAME_OVERHEAD));
        await fc.write(damaged);
      } else {
        await fc.write(frame);
      }
      sent++;
    }
  }
  return sent;
}

/** Seals a frame read from the file, compressing its payload when that pays. */
function wireFrame(
  frame: Uint8Array,
  transferId: number,
  seq: number,
  compressor: ChunkCompressor | undefined,
): Uint8Array {
  const raw = frame.subarray(DATA_FRAME_OVERHEAD);
  const wire = compressor?.encode(raw);
  if (!wire || wire.flags === 0) return sealDataFrame(frame, transferId, seq);
  return encodeData(transferId, seq, wire.payload, wire.flags);
}

/** Reads chunks of a file straight into data frames. */
class ChunkReader {
  readonly count: number;
  #file: Deno.FsFile;
  #size: number;
  #chunkSize: number;
  #position = 0;

  constructor(file: Deno.FsFile, size: number, chunkSize: number) {
    this.#file = file;
    this.#size = size;
    this.#chunkSize = chunkSize;
    this.count = chunkCount(size, chunkSize);
  }

  async frame(seq: number): Promise<Uint8Array> {
    const length = chunkLength(seq, this.#size, this.#chunkSize);
    const frame = allocDataFrame(Math.max(0, length));
    const offset = seq * this.#chunkSize;
    if (this.#position !== offset) {
      await this.#file.seek(offset, Deno.SeekMode.Start);
      this.#position = offset;
    }
    let filled = DATA_FRAME_OVERHEAD;
    while (filled < frame.length) {
      const got = await this.#file.read(frame.subarray(filled));
      if (got === null) {
        throw new TransferError(
          `Cannot read chunk ${seq}: the file shrank while being sent`,
        );
      }
      filled += got;
      this.#position += got;
    }
    return frame;
  }

  /**
   * Starts reading chunk `seq` ahead of need. A sender that gives up (its
   * connection broke) leaves it pending while the file is closed: the
   * failure then surfaces only if awaited, never as an unhandled rejection.
   */
  prefetch(seq: number): Promise<Uint8Array> {
    const frame = this.frame(seq);
    frame.catch(() => undefined);
    return frame;
  }

  async checksums(): Promise<Uint32Array> {
    const sums = new Uint32Array(this.count);
    for (let seq = 0; seq < this.count; seq++) {
      sums[seq] = crc32((await this.frame(seq)).subarray(DATA_FRAME_OVERHEAD));
    }
    return sums;
  }

  async digest(): Promise<string> {
    const hash = createHash("sha256");
    for (let seq = 0; seq < this.count; seq++) {
      hash.update((await this.frame(seq)).subarray(DATA_FRAME_OVERHEAD));
    }
    return hash.digest("hex");
  }
}

/** Options for {@linkcode receiveChunks}. */
export interface ReceiveChunksOptions {
  transferId: number;
  /** Repair rounds allowed before giving up. */
  maxRetries: number;
  /** A digest the file must have (from the offer or the user). */
  expectedSha256?: string;
  /** Paces incoming chunk bytes (the sender slows down through TCP). */
  limiter?: RateLimiter;
  /** Told how many chunks are already held, once the sender knows. */
  onReady?: (heldChunks: number) => void;
  log?: Logger;
}

/** Most chunks whose checksums one `sums` message may carry. */
export const MAX_SUMS_CHUNKS = 512 * 1024;

/** Writes still queued before the receiver stops reading the socket. */
const MAX_PENDING_WRITES = 8;
/** Sequence numbers shown in one log line. */
const MAX_LOGGED_SEQS = 20;

/**
 * Receives chunks into `store` until the file is verified and finalised:
 * tells the sender which chunks are held (`ready`), then writes good chunks
 * and asks again for missing or damaged ones.
 */
export async function receiveChunks(
  fc: FramedConnection,
  store: ChunkStore,
  options: ReceiveChunksOptions,
): Promise<TransferStats> {
  const { transferId, maxRetries, log, limiter } = options;
  const { size, chunkSize } = store.manifest;
  const wireStart = fc.bytesReceived;
  await announceHeld(fc, store, transferId, log);
  options.onReady?.(store.have.count);
  const pending: Promise<void>[] = [];
  let round = 0;
  let retransmitted = 0;
  for (;;) {
    const frame = await fc.next();
    if (frame === null) {
      throw new TransferError(
        `Cannot finish receiving: the sender closed the connection with ${
          store.count - store.have.count
        } chunk(s) missing`,
        { retryable: true },
      );
    }
    if (frame.kind === "data") {
      if (round > 0) retransmitted++;
      if (frame.transferId !== transferId || frame.seq >= store.count) {
        if (frame.intact) {
          throw new ProtocolError(
            `Cannot accept chunk ${frame.seq} of transfer ${frame.transferId}`,
          );
        }
        log?.warn("Dropped a damaged chunk whose header cannot be trusted");
        continue;
      }
      await limiter?.consume(frame.payload.length);
      if (!frame.intact) {
        log?.warn(`Checksum mismatch for chunk ${frame.seq}; will ask again`);
        continue;
      }
      let bytes: Uint8Array;
      try {
        bytes = decodeChunk(
          frame.payload,
          frame.flags,
          chunkLength(frame.seq, size, chunkSize),
        );
      } catch (error) {
        log?.warn(
          `Chunk ${frame.seq} is intact but unusable (${
            (error as Error).message
          }); will ask again`,
        );
        continue;
      }
      const written = store.accept(frame.seq, bytes);
      written.catch(() => undefined);
      pending.push(written);
      if (pending.length > MAX_PENDING_WRITES) await pending.shift();
      continue;
    }
    const message = frame.message;
    if (message.type === "error") {
      throw new RemoteError(message.code, message.message);
    }
    if (message.type !== "done" || message.transferId !== transferId) {
      throw new ProtocolError(
        `Cannot continue receiving: unexpected "${message.type}" message`,
      );
    }
    await Promise.all(pending.splice(0));
    await store.flush();
    log?.info("End of transmission received");
    const missing = store.have.missing();
    if (missing.length > 0) {
      log?.error(
        `Missing chunks: received ${store.have.count} out of ${store.count}`,
      );
      log?.error(`Missing sequence numbers: ${formatSeqs(missing)}`);
      if (round >= maxRetries) {
        const reason = `${missing.length} chunk(s) still missing after ${
          round + 1
        } attempt(s) (sequence numbers ${formatSeqs(missing)})`;
        await store.suspend();
        const message = `Cannot complete transfer: ${reason}`;
        await fc.sendError(ERROR_CODE.tooManyRetries, message);
        throw new TransferError(message);
      }
      round++;
      log?.info(`Retrying missing chunks (attempt ${round}/${maxRetries})...`);
      await fc.send({ type: "nack", transferId, seqs: missing, round });
      continue;
    }
    const actual = await store.digest();
    log?.info(`Reassembled file checksum: ${actual}`);
    const expected = options.expectedSha256 ?? message.sha256;
    if (actual !== message.sha256 || actual !== expected) {
      await store.discard();
      const reason =
        `SHA-256 ${actual} does not match the expected ${expected}`;
      await fc.sendError(ERROR_CODE.digestMismatch, reason);
      throw new TransferError(`Cannot verify file: ${reason}`, {
        retryable: true,
      });
    }
    log?.info("Checksum verification successful!");
    await store.finalize();
    await fc.send({
      type: "verified",
      transferId,
      sha256: actual,
      bytes: size,
    });
    return {
      sha256: actual,
      bytes: size,
      chunks: store.count,
      retransmittedChunks: retransmitted,
      attempts: round + 1,
      wireBytes: fc.bytesReceived - wireStart,
      resumedChunks: store.resumedChunks,
      resumedBytes: store.resumedBytes,
    };
  }
}

/** Sends `ready`, first re-verifying a part file whose state was lost. */
async function announceHeld(
  fc: FramedConnection,
  store: ChunkStore,
  transferId: number,
  log: Logger | undefined,
): Promise<void> {
  if (store.needsVerification && store.count <= MAX_SUMS_CHUNKS) {
    log?.warn(
      `Resume state for ${store.path} is missing or damaged; re-verifying the part file`,
    );
    await fc.send({
      type: "ready",
      transferId,
      have: store.have.toBase64(),
      verifyPart: true,
    });
    const sums = await fc.expect("sums");
    const held = await store.verifyPart(
      decodeChecksums(sums.crc32, store.count),
    );
    log?.info(`Part file re-verified: ${held} of ${store.count} chunks intact`);
  } else if (store.resumedChunks > 0) {
    log?.info(
      `Resuming ${store.path}: ${store.resumedChunks} of ${store.count} chunks already held`,
    );
  }
  await fc.send({ type: "ready", transferId, have: store.have.toBase64() });
}

/** `[1, 2, 3]`, or the first few and a count when the list is long. */
export function formatSeqs(seqs: readonly number[]): string {
  if (seqs.length <= MAX_LOGGED_SEQS) return `[${seqs.join(", ")}]`;
  return `[${seqs.slice(0, MAX_LOGGED_SEQS).join(", ")}, ... ${
    seqs.length - MAX_LOGGED_SEQS
  } more]`;
}
