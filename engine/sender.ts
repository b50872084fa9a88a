/**
 * The sending side of one file: waits for the receiver's `ready` (which
 * chunks it holds), streams the rest with the whole-file SHA-256 computed on
 * the way, says `done`, then serves repair rounds until `verified`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { ChunkBitmap } from "./bitmap.ts";
import { ChunkReader } from "./chunk_reader.ts";
import type { ChunkSource } from "./chunk_source.ts";
import { ChunkCompressor, type CompressionMode } from "./compression.ts";
import type { FramedConnection } from "../net/connection.ts";
import type { Logger } from "../base/log.ts";
import { type FecMode, paritySeq } from "./fec.ts";
import { FecSender } from "./fec_sender.ts";
import {
  CHUNK_FLAG,
  type ControlMessage,
  DATA_FRAME_OVERHEAD,
  encodeData,
  PARITY_FLAG,
  sealDataFrame,
} from "../protocol.ts";
import type { RateLimiter } from "../net/rate_limit.ts";
import {
  type ChunkFaults,
  decodeBitmap,
  encodeChecksums,
  MAX_EARLY_ASKS,
  repairCopies,
  type TransferStats,
} from "./transfer.ts";
import { ProtocolError, RemoteError, TransferError } from "../base/errors.ts";
import { bytesHeld, chunkCount, isAllZero } from "./chunks.ts";

/**
 * Checks the bytes of a chunk read from the file being sent, against what
 * the sending side knows of them (e.g. per-chunk checksums stored beside
 * the file), before they go out: it may repair them in place, and throws
 * when they are wrong and cannot be repaired. The engine owns this
 * interface; the server's parity store implements it.
 */
export interface ChunkGuard {
  /** The chunks it checks: `check` takes whole ones (the file's last may be shorter). */
  readonly chunkSize: number;
  /** Checks (and repairs in place) the chunk at byte `offset` of the file. */
  check(offset: number, bytes: Uint8Array): Promise<void>;
}

/** The payload of a zero-chunk frame. */
const NO_BYTES = new Uint8Array(0);

/** Options for {@linkcode sendChunks}. */
export interface SendChunksOptions {
  /** The transfer's id; when absent, the one in the receiver's `ready` is used. */
  transferId?: number;
  /** File size in bytes. */
  size: number;
  /** Bytes per chunk. */
  chunkSize: number;
  /** The file's SHA-256 when known; otherwise computed while sending in order. */
  sha256?: string;
  /** Damages outgoing chunks, for the demo and tests. */
  simulator?: ChunkFaults;
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
  /** The receiver understands zero-chunk frames: chunks of zeros travel as no payload. @default false */
  zeroChunks?: boolean;
  /** Checks (and may repair) each chunk read from the file before it is sent. */
  guard?: ChunkGuard;
  /**
   * Parity frames after each group of chunks of the first round (the
   * receiver announced `fecK` support): a fixed `K+M` or `auto`. @default "off"
   */
  fec?: FecMode;
  /** Told how many chunks the receiver already holds, once it says so. */
  onReady?: (heldChunks: number) => void;
  /** Told the bytes delivered so far (first sends) and the chunks sent again. */
  onProgress?: (bytes: number, retransmittedChunks: number) => void;
  /** Where repair rounds are logged. */
  log?: Logger;
}

/**
 * Sends a file's chunks, read from `source`, until the receiver reports it
 * verified.
 */
export async function sendChunks(
  fc: FramedConnection,
  source: ChunkSource,
  options: SendChunksOptions,
): Promise<TransferStats> {
  const { size, chunkSize, simulator } = options;
  const wireStart = fc.bytesSent;
  const count = chunkCount(size, chunkSize);
  const reader = new ChunkReader(source, size, chunkSize);
  const readiness = await awaitReady(fc, options.transferId, reader);
  if (readiness === "verified") {
    return alreadyHeld(size, count, options.knownSha256 ?? "");
  }
  const { transferId, have } = readiness;
  options.onReady?.(have.count);
  const sender = new ChunkSender(fc, reader, transferId, options, have);
  sender.progress(bytesHeld(have, size, chunkSize));
  let sha256 = options.sha256;
  if (sha256 === undefined) {
    // Hashing in order rules out shuffling: the simulator only loses and damages here.
    sha256 = await sender.sendInOrderHashing(have);
  } else {
    const firstRound = have.missing();
    await sender.send(simulator ? simulator.order(firstRound) : firstRound);
  }
  options.onDigest?.(sha256);
  await fc.send({ type: "done", transferId, sha256 });
  let rounds = 0;
  const maxRounds = options.maxRounds ?? 100;
  for (;;) {
    const reply = await sender.inbox.next();
    // Sent before our `done` arrived: the next nack covers it.
    if (isEarlyNack(reply, transferId) || reply.type === "loss") continue;
    if (reply.type === "verified" && reply.transferId === transferId) {
      return {
        sha256,
        bytes: size,
        chunks: count,
        retransmittedChunks: sender.retransmitted,
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
    checkRepairRequest(reply.seqs, count);
    const copies = repairCopies(reply.round);
    options.log?.info(
      `Resending ${reply.seqs.length} chunk(s), round ${reply.round}${
        copies > 1 ? `, ${copies} copies each` : ""
      }`,
    );
    await sender.send(
      simulator ? simulator.order(reply.seqs) : reply.seqs,
      reply.round,
    );
    await fc.send({ type: "done", transferId, sha256 });
  }
}

/**
 * A receiver names each missing chunk once and only chunks of the file;
 * anything else would let a tiny `nack` make this side send without bound.
 * `early` counts the times each chunk was asked for during the first round:
 * at most {@linkcode MAX_EARLY_ASKS}.
 */
function checkRepairRequest(
  seqs: readonly number[],
  count: number,
  early?: Uint8Array,
): void {
  const asked = new Set<number>();
  for (const seq of seqs) {
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
    if (early && early[seq]! >= MAX_EARLY_ASKS) {
      throw new ProtocolError(
        `Cannot resend chunk ${seq}: asked for more than ${MAX_EARLY_ASKS} times in the first round`,
      );
    }
    asked.add(seq);
  }
  if (early) {
    for (const seq of seqs) early[seq]!++;
  }
}

/** A `nack` the receiver sent during the first round (round 0): "send these now". */
function isEarlyNack(message: ControlMessage, transferId: number): boolean {
  return message.type === "nack" && message.round === 0 &&
    message.transferId === transferId;
}

/**
 * Control messages from the receiver, read in the background while chunks
 * go out, so an early `nack` or an `error` is seen mid-round. The read
 * waits without the idle timeout (a receiver says nothing while all is
 * well); {@linkcode next} applies it.
 */
class Inbox {
  #fc: FramedConnection;
  #pending: Promise<ControlMessage> | undefined;
  #arrived: ControlMessage | undefined;

  constructor(fc: FramedConnection) {
    this.#fc = fc;
  }

  /** Starts reading in the background, unless a read is under way. */
  listen(): void {
    if (this.#pending) return;
    const read = this.#fc.nextControl({ idleTimeout: false });
    this.#pending = read;
    read.then((message) => {
      if (this.#pending === read) this.#arrived = message;
    }, () => undefined);
  }

  /**
   * A message that has arrived, if any. Listening stops with it: a caller
   * that goes on calls {@linkcode listen}, so one that gives up (an `error`
   * arrived) leaves no read behind to swallow what follows on the connection.
   */
  poll(): ControlMessage | undefined {
    const message = this.#arrived;
    if (message === undefined) return undefined;
    this.#arrived = undefined;
    this.#pending = undefined;
    return message;
  }

  /** The next message, waiting at most the idle timeout for it. */
  next(): Promise<ControlMessage> {
    const pending = this.#pending;
    this.#pending = undefined;
    this.#arrived = undefined;
    return pending ? this.#fc.withIdleTimeout(pending) : this.#fc.nextControl();
  }
}

/**
 * Waits for the receiver's `ready`, or `verified` when it already holds the
 * file. A receiver that lost its resume state asks for every chunk's CRC-32
 * first, to re-verify its part file.
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

/** Puts one transfer's chunks on the wire: compressed, paced, damaged when simulating. */
class ChunkSender {
  /** Chunk frames sent in repair rounds. */
  retransmitted = 0;
  /** Where the receiver's messages arrive. */
  readonly inbox: Inbox;
  /** Times the receiver asked for each chunk during the first round. */
  #early: Uint8Array;
  #fc: FramedConnection;
  #reader: ChunkReader;
  #transferId: number;
  #simulator: ChunkFaults | undefined;
  #limiter: RateLimiter | undefined;
  #compressor: ChunkCompressor | undefined;
  #zeroChunks: boolean;
  #guard: ChunkGuard | undefined;
  #chunkSize: number;
  #fec: FecSender | undefined;
  #onProgress: SendChunksOptions["onProgress"];
  #delivered = 0;

  constructor(
    fc: FramedConnection,
    reader: ChunkReader,
    transferId: number,
    options: SendChunksOptions,
    have: ChunkBitmap,
  ) {
    this.#fc = fc;
    this.inbox = new Inbox(fc);
    this.#early = new Uint8Array(reader.count);
    this.#reader = reader;
    this.#transferId = transferId;
    this.#simulator = options.simulator;
    this.#limiter = options.limiter;
    this.#compressor = options.compression && options.compression !== "none"
      ? new ChunkCompressor(options.compression)
      : undefined;
    this.#onProgress = options.onProgress;
    this.#zeroChunks = options.zeroChunks ?? false;
    this.#guard = options.guard;
    this.#chunkSize = options.chunkSize;
    this.#fec = options.fec && options.fec !== "off"
      ? new FecSender(options.fec, options.size, options.chunkSize, have)
      : undefined;
  }

  /** Counts bytes as delivered (first sends, or chunks the receiver held). */
  progress(bytes: number): void {
    this.#delivered += bytes;
    this.#onProgress?.(this.#delivered, this.retransmitted);
  }

  /**
   * Reads every chunk in order, hashing all of them and sending those the
   * receiver lacks; resolves to the file's SHA-256.
   */
  async sendInOrderHashing(have: ChunkBitmap): Promise<string> {
    const hash = createHash("sha256");
    const count = this.#reader.count;
    this.inbox.listen();
    let next = this.#reader.prefetch(0);
    for (let seq = 0; seq < count; seq++) {
      const frame = await next;
      if (seq + 1 < count) next = this.#reader.prefetch(seq + 1);
      const payload = frame.subarray(DATA_FRAME_OVERHEAD);
      hash.update(payload);
      if (have.has(seq)) continue;
      await this.#deliver(this.#seal(frame, seq), seq);
      await this.#sendParity(seq, payload);
      this.progress(payload.length);
      await this.#serveEarly(next);
    }
    if (count === 0) await next.catch(() => undefined);
    return hash.digest("hex");
  }

  /**
   * Sends chunks `seqs`: once in the first round (`round` 0), and
   * {@linkcode repairCopies} times each in repair round `round`.
   */
  async send(seqs: readonly number[], round = 0): Promise<void> {
    if (seqs.length === 0) return;
    const copies = round === 0 ? 1 : repairCopies(round);
    if (round === 0) this.inbox.listen();
    let next = this.#reader.prefetch(seqs[0]!);
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      const raw = await this.#checked(seq, await next);
      const frame = this.#seal(raw, seq);
      if (i + 1 < seqs.length) next = this.#reader.prefetch(seqs[i + 1]!);
      let written = 0;
      for (let copy = 0; copy < copies; copy++) {
        if (await this.#deliver(frame, seq)) written++;
      }
      if (round === 0) {
        await this.#sendParity(seq, raw.subarray(DATA_FRAME_OVERHEAD));
        this.progress(raw.length - DATA_FRAME_OVERHEAD);
        await this.#serveEarly(next);
      } else {
        this.retransmitted += written;
        this.#onProgress?.(this.#delivered, this.retransmitted);
      }
    }
  }

  /**
   * Sends at once, one copy each, the chunks an early `nack` asks for, once
   * `reading` (the read ahead) is done, since both read the same file. An
   * `error` from the receiver ends the round.
   */
  async #serveEarly(reading: Promise<unknown>): Promise<void> {
    const message = this.inbox.poll();
    if (message === undefined) return;
    if (message.type === "error") {
      throw new RemoteError(message.code, message.message);
    }
    if (message.type === "loss" && message.transferId === this.#transferId) {
      this.#fec?.report(message.lost, message.received);
      return this.inbox.listen();
    }
    if (message.type !== "nack" || !isEarlyNack(message, this.#transferId)) {
      throw new ProtocolError(
        `Cannot continue sending: unexpected "${message.type}" message`,
      );
    }
    checkRepairRequest(message.seqs, this.#reader.count, this.#early);
    this.inbox.listen();
    await reading.catch(() => undefined);
    for (const seq of message.seqs) {
      const frame = this.#seal(
        await this.#checked(seq, await this.#reader.frameApart(seq)),
        seq,
      );
      if (await this.#deliver(frame, seq)) this.retransmitted++;
    }
    this.#onProgress?.(this.#delivered, this.retransmitted);
  }

  /** After chunk `seq` (its original `bytes`) went out: its group's parity frames, once the group is complete. */
  async #sendParity(seq: number, bytes: Uint8Array): Promise<void> {
    const parity = this.#fec?.sent(seq, bytes);
    if (!parity) return;
    for (const [j, shard] of parity.shards.entries()) {
      const frame = encodeData(
        this.#transferId,
        paritySeq(parity.group, j),
        shard,
        PARITY_FLAG,
      );
      await this.#deliver(frame, seq, `parity ${j} of group ${parity.group}`);
    }
  }

  /** The frame of chunk `seq` once the guard (if any) has checked its payload. */
  async #checked(seq: number, frame: Uint8Array): Promise<Uint8Array> {
    await this.#guard?.check(
      seq * this.#chunkSize,
      frame.subarray(DATA_FRAME_OVERHEAD),
    );
    return frame;
  }

  /** Writes a sealed frame, unless the simulator loses or damages it; false when lost. */
  async #deliver(
    frame: Uint8Array,
    seq: number,
    what = `chunk ${seq}`,
  ): Promise<boolean> {
    const fate = this.#simulator?.fate(seq, what) ?? "deliver";
    if (fate === "lose") return false;
    if (fate === "corrupt") {
      const damaged = frame.slice();
      this.#simulator!.corrupt(damaged.subarray(DATA_FRAME_OVERHEAD));
      await this.#write(damaged);
    } else {
      await this.#write(frame);
    }
    return true;
  }

  async #write(frame: Uint8Array): Promise<void> {
    await this.#limiter?.consume(frame.length);
    await this.#fc.write(frame);
  }

  /** Seals a frame read from the file, compressing its payload when that pays. */
  #seal(frame: Uint8Array, seq: number): Uint8Array {
    const payload = frame.subarray(DATA_FRAME_OVERHEAD);
    if (this.#zeroChunks && payload.length > 0 && isAllZero(payload)) {
      return encodeData(this.#transferId, seq, NO_BYTES, CHUNK_FLAG.zeros);
    }
    const wire = this.#compressor?.encode(payload);
    if (!wire || wire.flags === 0) {
      return sealDataFrame(frame, this.#transferId, seq);
    }
    return encodeData(this.#transferId, seq, wire.payload, wire.flags);
  }
}
