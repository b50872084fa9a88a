/**
 * The receiving side of one file: tells the sender which chunks are held,
 * checks each chunk's CRC, hands good ones to a {@linkcode ChunkSink},
 * answers `nack` with exactly the sequence numbers still missing, and
 * finalises once the whole-file SHA-256 matches.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ChunkBitmap } from "./bitmap.ts";
import type { ChunkSink } from "./chunk_sink.ts";
import { decodeChunk } from "./compression.ts";
import type { FramedConnection } from "../net/connection.ts";
import { type DataFrame, PARITY_FLAG } from "../protocol.ts";
import { MAX_PARITY_FRAMES } from "./fec.ts";
import { FecReceiver } from "./fec_receiver.ts";
import type { Logger } from "../base/log.ts";
import type { RateLimiter } from "../net/rate_limit.ts";
import {
  decodeChecksums,
  formatSeqs,
  MAX_EARLY_ASKS,
  OVERDUE_DISTANCE,
  type TransferStats,
} from "./transfer.ts";
import {
  ConnectionError,
  ERROR_CODE,
  ProtocolError,
  RemoteError,
  TransferError,
} from "../base/errors.ts";
import { chunkCount, chunkLength } from "./chunks.ts";

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
  /**
   * The sender serves a `nack` with round 0 during its first round: a chunk
   * overdue by {@linkcode OVERDUE_DISTANCE} places is asked for at once, so
   * its repair arrives while later chunks still stream. @default false
   */
  earlyNack?: boolean;
  /** Told the bytes held so far and the chunk frames received in repair rounds. */
  onProgress?: (bytes: number, retransmittedChunks: number) => void;
  /**
   * Told of the file once it holds its final name (its digest), before the
   * sender is told it was verified: whatever is recorded here is in place
   * when the sender hears the news.
   */
  onStored?: (sha256: string) => Promise<void>;
  /**
   * The sender follows each group of this many chunks with parity frames:
   * lost chunks are rebuilt from them (see `fec_receiver.ts`), and early
   * asks wait until a group's parity has had its chance.
   */
  fecK?: number;
  log?: Logger;
}

/** Most chunks whose checksums one `sums` message may carry. */
export const MAX_SUMS_CHUNKS = 512 * 1024;

/**
 * Bytes of chunk writes still queued before the receiver stops reading the
 * socket (between 2 and 64 writes, whatever the chunk size).
 */
const MAX_PENDING_WRITE_BYTES = 16 * 1024 * 1024;

/**
 * Receives chunks into `store` until the file is verified and finalised:
 * tells the sender which chunks are held (`ready`), then writes good chunks
 * and asks again for missing or damaged ones.
 */
export async function receiveChunks(
  fc: FramedConnection,
  store: ChunkSink,
  options: ReceiveChunksOptions,
): Promise<TransferStats> {
  await announceHeld(fc, store, options.transferId, options.log);
  options.onReady?.(store.have.count);
  const receiver = new ChunkReceiver(fc, store, options);
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
      await receiver.chunk(frame);
      continue;
    }
    const message = frame.message;
    if (message.type === "error") {
      throw new RemoteError(message.code, message.message);
    }
    if (message.type !== "done" || message.transferId !== options.transferId) {
      throw new ProtocolError(
        `Cannot continue receiving: unexpected "${message.type}" message`,
      );
    }
    const stats = await receiver.done(message.sha256);
    if (stats) return stats;
  }
}

/** One file being received: the writes in flight, the rounds, the tallies. */
class ChunkReceiver {
  #fc: FramedConnection;
  #store: ChunkSink;
  #options: ReceiveChunksOptions;
  #wireStart: number;
  #held: number;
  /** Chunks counted towards progress (each once). */
  #counted: ChunkBitmap;
  #pending: Promise<void>[] = [];
  #maxPending: number;
  #overdue: OverdueChunks | undefined;
  #fec: FecReceiver | undefined;
  #round = 0;
  #retransmitted = 0;
  /** The store gives a payload back once it is written and hashed. */
  #recycle = (payload: Uint8Array) => this.#fc.pool.give(payload);

  constructor(
    fc: FramedConnection,
    store: ChunkSink,
    options: ReceiveChunksOptions,
  ) {
    this.#fc = fc;
    this.#store = store;
    this.#options = options;
    this.#wireStart = fc.bytesReceived;
    const { chunkSize } = store.manifest;
    this.#held = store.resumedBytes;
    this.#counted = ChunkBitmap.fromBase64(store.have.toBase64(), store.count);
    this.#maxPending = Math.min(
      64,
      Math.max(2, Math.floor(MAX_PENDING_WRITE_BYTES / chunkSize)),
    );
    this.#fec = options.fecK === undefined ? undefined : new FecReceiver({
      k: options.fecK,
      transferId: options.transferId,
      store,
      send: (message) => fc.send(message),
      has: (seq) => this.#counted.has(seq),
      accept: (seq, bytes) => this.#take(seq, bytes, undefined),
      ...(options.log ? { log: options.log } : {}),
    });
    // With parity, a chunk is only late once its group's parity has passed.
    this.#overdue = options.earlyNack
      ? new OverdueChunks(
        store.count,
        chunkSize,
        options.fecK === undefined
          ? OVERDUE_DISTANCE
          : options.fecK + MAX_PARITY_FRAMES + OVERDUE_DISTANCE,
      )
      : undefined;
    options.onProgress?.(this.#held, 0);
  }

  /** Takes one data frame: checked, decoded, queued for writing. */
  async chunk(frame: DataFrame): Promise<void> {
    if (frame.flags & PARITY_FLAG) return await this.#parity(frame);
    await this.#chunk(frame);
    if (this.#round === 0 && frame.seq < this.#store.count) {
      await this.#fec?.data(frame.seq);
    }
  }

  /** A parity frame: kept for its group when intact, else dropped. */
  async #parity(frame: DataFrame): Promise<void> {
    if (!this.#fec) {
      throw new ProtocolError(
        "Cannot accept a parity frame: none was announced",
      );
    }
    if (
      frame.intact && frame.transferId === this.#options.transferId &&
      this.#round === 0
    ) {
      await this.#fec.parity(frame.seq, frame.payload);
    }
    this.#fc.pool.give(frame.payload);
  }

  async #chunk(frame: DataFrame): Promise<void> {
    const { log, limiter } = this.#options;
    const fc = this.#fc;
    if (this.#round > 0) this.#retransmitted++;
    if (
      frame.transferId !== this.#options.transferId ||
      frame.seq >= this.#store.count
    ) {
      if (frame.intact) {
        throw new ProtocolError(
          `Cannot accept chunk ${frame.seq} of transfer ${frame.transferId}`,
        );
      }
      log?.warn("Dropped a damaged chunk whose header cannot be trusted");
      return fc.pool.give(frame.payload);
    }
    await limiter?.consume(frame.payload.length);
    if (!frame.intact) {
      log?.warn(`Checksum mismatch for chunk ${frame.seq}; will ask again`);
      return fc.pool.give(frame.payload);
    }
    const bytes = this.#decode(frame);
    if (bytes === undefined) return;
    await this.#take(
      frame.seq,
      bytes,
      bytes === frame.payload ? this.#recycle : undefined,
    );
    await this.#askEarly(frame.seq);
  }

  /** Queues chunk `seq` for writing (received, or rebuilt from parity) and counts it. */
  async #take(
    seq: number,
    bytes: Uint8Array,
    release: ((payload: Uint8Array) => void) | undefined,
  ): Promise<void> {
    const written = this.#store.accept(seq, bytes, release);
    this.#progress(seq, bytes.length);
    written.catch(() => undefined);
    this.#pending.push(written);
    if (this.#pending.length > this.#maxPending) await this.#pending.shift();
  }

  /** The chunk's original bytes, or `undefined` (and a warning) when they cannot be had. */
  #decode(frame: DataFrame): Uint8Array | undefined {
    const { size, chunkSize } = this.#store.manifest;
    let bytes: Uint8Array;
    try {
      bytes = decodeChunk(
        frame.payload,
        frame.flags,
        chunkLength(frame.seq, size, chunkSize),
      );
    } catch (error) {
      this.#options.log?.warn(
        `Chunk ${frame.seq} is intact but unusable (${
          (error as Error).message
        }); will ask again`,
      );
      this.#fc.pool.give(frame.payload);
      return undefined;
    }
    if (bytes !== frame.payload) this.#fc.pool.give(frame.payload);
    return bytes;
  }

  #progress(seq: number, length: number): void {
    if (this.#counted.has(seq)) return;
    this.#counted.add(seq);
    this.#held += length;
    this.#options.onProgress?.(this.#held, this.#retransmitted);
  }

  /** In a first round, asks at once for chunks overdue behind `seq`. */
  async #askEarly(seq: number): Promise<void> {
    if (!this.#overdue || this.#round !== 0) return;
    const { repair, late } = this.#overdue.arrived(seq, this.#counted);
    if (repair) this.#retransmitted++;
    if (late.length === 0) return;
    this.#options.log?.info(
      `Asking again for chunk(s) ${formatSeqs(late)} at once`,
    );
    await this.#fc.send({
      type: "nack",
      transferId: this.#options.transferId,
      seqs: late,
      round: 0,
    });
  }

  /**
   * The sender's `done`: asks again for what is missing (and resolves to
   * `undefined`), or checks the whole file against `sha256` and finalises it.
   */
  async done(sha256: string): Promise<TransferStats | undefined> {
    const store = this.#store;
    const { log, transferId, maxRetries } = this.#options;
    if (this.#round === 0) await this.#fec?.finish();
    await Promise.all(this.#pending.splice(0));
    await store.flush();
    log?.info("End of transmission received");
    const missing = store.have.missing();
    if (missing.length > 0) {
      log?.error(
        `Missing chunks: received ${store.have.count} out of ${store.count}`,
      );
      log?.error(`Missing sequence numbers: ${formatSeqs(missing)}`);
      if (this.#round >= maxRetries) return await this.#giveUp(missing);
      this.#round++;
      log?.info(
        `Retrying missing chunks (attempt ${this.#round}/${maxRetries})...`,
      );
      await this.#fc.send({
        type: "nack",
        transferId,
        seqs: missing,
        round: this.#round,
      });
      return undefined;
    }
    return await this.#verify(sha256);
  }

  async #giveUp(missing: number[]): Promise<never> {
    const reason = `${missing.length} chunk(s) still missing after ${
      this.#round + 1
    } attempt(s) (sequence numbers ${formatSeqs(missing)})`;
    await this.#store.suspend();
    const message = `Cannot complete transfer: ${reason}`;
    await this.#fc.sendError(ERROR_CODE.tooManyRetries, message);
    throw new TransferError(message);
  }

  /** Checks the whole-file digest, then finalises and answers `verified`. */
  async #verify(sha256: string): Promise<TransferStats> {
    const store = this.#store;
    const { log, transferId } = this.#options;
    const actual = await store.digest();
    log?.info(`Reassembled file checksum: ${actual}`);
    const expected = this.#options.expectedSha256 ?? sha256;
    if (actual !== sha256 || actual !== expected) {
      await store.discard();
      const reason =
        `SHA-256 ${actual} does not match the expected ${expected}`;
      await this.#fc.sendError(ERROR_CODE.digestMismatch, reason);
      throw new TransferError(`Cannot verify file: ${reason}`, {
        retryable: true,
      });
    }
    log?.info("Checksum verification successful!");
    await store.finalize();
    await this.#options.onStored?.(actual);
    const { size } = store.manifest;
    await this.#fc.send({
      type: "verified",
      transferId,
      sha256: actual,
      bytes: size,
    });
    return {
      sha256: actual,
      bytes: size,
      chunks: store.count,
      retransmittedChunks: this.#retransmitted,
      rebuiltChunks: this.#fec?.rebuilt ?? 0,
      attempts: this.#round + 1,
      wireBytes: this.#fc.bytesReceived - this.#wireStart,
      resumedChunks: store.resumedChunks,
      resumedBytes: store.resumedBytes,
    };
  }
}

/**
 * Finds chunks overdue in a first round: chunk `seq` is taken as lost once a
 * chunk {@linkcode OVERDUE_DISTANCE} places after it has arrived without it.
 * A chunk asked for that has still not come after {@linkcode reaskAfter}
 * more arrivals (its repair was lost too) is asked for again, up to
 * {@linkcode MAX_EARLY_ASKS} times in all. At most
 * {@linkcode MAX_OUTSTANDING_ASKS} asks are outstanding: what they miss, the
 * `nack` after `done` covers.
 */
class OverdueChunks {
  #count: number;
  #highest = -1;
  /** Chunks below this were looked at already. */
  #scanned = 0;
  /** Chunks asked for and not yet arrived, oldest ask first. */
  #asked = new Map<number, { at: number; asks: number }>();
  #arrivals = 0;
  #reaskAfter: number;
  #distance: number;

  /**
   * Overdue chunks of a file of `count` chunks: a chunk `distance` places
   * behind the newest arrival is late (more than the reorder window when a
   * group's parity must have its chance first).
   */
  constructor(count: number, chunkSize: number, distance = OVERDUE_DISTANCE) {
    this.#count = count;
    this.#distance = distance;
    this.#reaskAfter = reaskAfter(chunkSize);
  }

  /**
   * Notes that chunk `seq` arrived (and is now in `held`): whether it
   * answered an early ask, and which chunks to ask for now.
   */
  arrived(
    seq: number,
    held: ChunkBitmap,
  ): { repair: boolean; late: number[] } {
    this.#arrivals++;
    const repair = this.#asked.delete(seq);
    const late: { seq: number; asks: number }[] = [];
    for (const [lost, ask] of this.#asked) {
      if (this.#arrivals - ask.at < this.#reaskAfter) break;
      this.#asked.delete(lost);
      if (!held.has(lost) && ask.asks < MAX_EARLY_ASKS) {
        late.push({ seq: lost, asks: ask.asks + 1 });
      }
    }
    if (seq > this.#highest) {
      this.#highest = seq;
      const limit = Math.min(seq - this.#distance, this.#count - 1);
      for (; this.#scanned <= limit; this.#scanned++) {
        if (
          !held.has(this.#scanned) &&
          this.#asked.size + late.length < MAX_OUTSTANDING_ASKS
        ) {
          late.push({ seq: this.#scanned, asks: 1 });
        }
      }
    }
    for (const ask of late) {
      this.#asked.set(ask.seq, { at: this.#arrivals, asks: ask.asks });
    }
    return { repair, late: late.map((ask) => ask.seq) };
  }
}

/** Most chunks asked for early and not yet arrived, which bounds what is tracked. */
const MAX_OUTSTANDING_ASKS = 256;

/**
 * Arrivals after which an early repair counts as lost: well past what the
 * sender can have in flight (socket buffers of a few MiB).
 */
function reaskAfter(chunkSize: number): number {
  return Math.max(4 * OVERDUE_DISTANCE, Math.ceil(REASK_BYTES / chunkSize));
}

/** Bytes that arrive before an early repair that has not come is asked for again. */
const REASK_BYTES = 32 * 1024 * 1024;

/** Sends `ready`, first re-verifying a part file whose state was lost. */
async function announceHeld(
  fc: FramedConnection,
  store: ChunkSink,
  transferId: number,
  log: Logger | undefined,
): Promise<void> {
  if (store.needsVerification && store.count <= MAX_SUMS_CHUNKS) {
    log?.warn(
      `Resume state for ${store.label} is missing or damaged; re-verifying the part file`,
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
      `Resuming ${store.label}: ${store.resumedChunks} of ${store.count} chunks already held`,
    );
  }
  await fc.send({ type: "ready", transferId, have: store.have.toBase64() });
}

/** What arrived for an eager put: the file's bytes, or why they cannot be used. */
export type EagerBody =
  | { ok: true; bytes: Uint8Array }
  | { ok: false; reason: string };

/** What an eager put announced. */
export interface EagerPut {
  transferId: number;
  size: number;
  chunkSize: number;
  sha256: string;
}

/**
 * Reads what follows an eager put (a file of at most one chunk sent without
 * waiting for `ready`): exactly one data frame, or none for an empty file;
 * the put itself carries the SHA-256, so no `done` follows. Checks the
 * chunk's CRC and the file's digest. A damaged chunk is not repaired here:
 * the sender is told to send the file again the normal way.
 */
export async function receiveEager(
  fc: FramedConnection,
  put: EagerPut,
): Promise<EagerBody> {
  let bytes: Uint8Array = new Uint8Array(0);
  if (chunkCount(put.size, put.chunkSize) > 0) {
    const frame = await fc.next();
    if (frame === null) {
      throw new ConnectionError(
        `Cannot finish receiving transfer ${put.transferId}: connection closed`,
      );
    }
    if (frame.kind === "control") {
      if (frame.message.type === "error") {
        throw new RemoteError(frame.message.code, frame.message.message);
      }
      throw new ProtocolError(
        `Cannot continue eager transfer ${put.transferId}: expected its chunk, got "${frame.message.type}"`,
      );
    }
    if (!frame.intact) {
      return { ok: false, reason: "the chunk arrived damaged" };
    }
    if (frame.transferId !== put.transferId || frame.seq !== 0) {
      throw new ProtocolError(
        `Cannot accept chunk ${frame.seq} of transfer ${frame.transferId} in eager transfer ${put.transferId}`,
      );
    }
    try {
      bytes = decodeChunk(frame.payload, frame.flags, put.size);
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
  }
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== put.sha256) {
    return {
      ok: false,
      reason: `SHA-256 ${actual} does not match the expected ${put.sha256}`,
    };
  }
  return { ok: true, bytes };
}
