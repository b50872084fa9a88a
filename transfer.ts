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

import { createHash } from "node:crypto";
import { ChunkBitmap } from "./bitmap.ts";
import {
  bytesHeld,
  chunkCount,
  chunkLength,
  type ChunkStore,
} from "./chunk_store.ts";
import { type FramedConnection, RemoteError } from "./connection.ts";
import type { ErrorSimulator } from "./faults.ts";
import type { Logger } from "./log.ts";
import {
  allocDataFrame,
  DATA_FRAME_OVERHEAD,
  ERROR_CODE,
  ProtocolError,
  sealDataFrame,
} from "./protocol.ts";

/** A transfer that ended without a verified file; the message says why. */
export class TransferError extends Error {
  /** Builds the error; `cause` is passed through. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TransferError";
  }
}

/** What one transfer did, as reported by `--json`. */
export interface TransferStats {
  sha256: string;
  bytes: number;
  chunks: number;
  /** Chunk frames sent (sender) or received (receiver) in repair rounds. */
  retransmittedChunks: number;
  /** Transmission rounds: 1 plus the repair rounds used. */
  attempts: number;
  /** Chunks the receiver already held from an earlier run. */
  resumedChunks: number;
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
  transferId: number;
  size: number;
  chunkSize: number;
  /** Chunks the receiver already holds; they are not sent. */
  have?: ChunkBitmap;
  /** The file's SHA-256 when known; otherwise computed while sending in order. */
  sha256?: string;
  /** Damages outgoing chunks, for the demo and tests. */
  simulator?: ErrorSimulator;
  /** Upper bound on repair rounds this side serves. @default 100 */
  maxRounds?: number;
  log?: Logger;
}

/** Sends a file's chunks until the receiver reports it verified. */
export async function sendChunks(
  fc: FramedConnection,
  file: Deno.FsFile,
  options: SendChunksOptions,
): Promise<TransferStats> {
  const { transferId, size, chunkSize, simulator } = options;
  const count = chunkCount(size, chunkSize);
  const have = options.have ?? new ChunkBitmap(count);
  const reader = new ChunkReader(file, size, chunkSize);
  let sha256 = options.sha256;
  if (sha256 === undefined && simulator) sha256 = await reader.digest();
  const firstRound = have.missing();
  const order = simulator ? simulator.order(firstRound) : firstRound;
  if (sha256 === undefined) {
    sha256 = await sendInOrderHashing(fc, reader, transferId, have);
  } else {
    await sendFrames(fc, reader, transferId, order, 1, simulator);
  }
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
    for (const seq of reply.seqs) {
      if (seq >= count) {
        throw new ProtocolError(
          `Cannot resend chunk ${seq}: the file has ${count} chunks`,
        );
      }
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
    );
    await fc.send({ type: "done", transferId, sha256 });
  }
}

async function sendInOrderHashing(
  fc: FramedConnection,
  reader: ChunkReader,
  transferId: number,
  have: ChunkBitmap,
): Promise<string> {
  const hash = createHash("sha256");
  let next = reader.frame(0);
  for (let seq = 0; seq < reader.count; seq++) {
    const frame = await next;
    if (seq + 1 < reader.count) next = reader.frame(seq + 1);
    hash.update(frame.subarray(DATA_FRAME_OVERHEAD));
    if (!have.has(seq)) await fc.write(sealDataFrame(frame, transferId, seq));
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
): Promise<number> {
  let sent = 0;
  if (seqs.length === 0) return sent;
  let next = reader.frame(seqs[0]!);
  for (let i = 0; i < seqs.length; i++) {
    const seq = seqs[i]!;
    const frame = sealDataFrame(await next, transferId, seq);
    if (i + 1 < seqs.length) next = reader.frame(seqs[i + 1]!);
    for (let copy = 0; copy < copies; copy++) {
      const fate = simulator?.fate(seq) ?? "deliver";
      if (fate === "lose") continue;
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
  log?: Logger;
}

/** Writes still queued before the receiver stops reading the socket. */
const MAX_PENDING_WRITES = 8;
/** Sequence numbers shown in one log line. */
const MAX_LOGGED_SEQS = 20;

/** Receives chunks into `store` until the file is verified and finalised. */
export async function receiveChunks(
  fc: FramedConnection,
  store: ChunkStore,
  options: ReceiveChunksOptions,
): Promise<TransferStats> {
  const { transferId, maxRetries, log } = options;
  const { size, chunkSize } = store.manifest;
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
      const expectedLength = chunkLength(frame.seq, size, chunkSize);
      if (!frame.intact || frame.payload.length !== expectedLength) {
        log?.warn(`Checksum mismatch for chunk ${frame.seq}; will ask again`);
        continue;
      }
      const written = store.accept(frame.seq, frame.payload);
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
        await fc.sendError(ERROR_CODE.tooManyRetries, reason);
        throw new TransferError(`Cannot complete transfer: ${reason}`);
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
      throw new TransferError(`Cannot verify file: ${reason}`);
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
      resumedChunks: store.resumedChunks,
      resumedBytes: store.resumedBytes,
    };
  }
}

/** `[1, 2, 3]`, or the first few and a count when the list is long. */
export function formatSeqs(seqs: readonly number[]): string {
  if (seqs.length <= MAX_LOGGED_SEQS) return `[${seqs.join(", ")}]`;
  return `[${seqs.slice(0, MAX_LOGGED_SEQS).join(", ")}, ... ${
    seqs.length - MAX_LOGGED_SEQS
  } more]`;
}
