/**
 * What both ends of a file transfer share: the outcome types, the repair
 * policy, and the wire encodings of bitmaps and chunk checksums. The sender
 * (`sender.ts`) streams the chunks the receiver lacks, then `done` with the
 * whole-file SHA-256; the receiver (`receiver.ts`) checks each chunk's CRC,
 * answers `nack` with exactly the sequence numbers still missing, or
 * `verified` once the file digest matches. Repair rounds are pipelined: every
 * missing chunk of a round is sent back to back, never one per round trip.
 * Repair starts sooner still when the sender offers `earlyNack`: during the
 * first round the receiver asks (`nack` round 0) for each chunk overdue by
 * {@linkcode OVERDUE_DISTANCE}, and the sender slips it in between the rest.
 *
 * @module
 */

import { ProtocolError } from "../base/errors.ts";
import { Buffer } from "node:buffer";
import { ChunkBitmap } from "./bitmap.ts";

/** Where a transfer stands, as reported to a progress callback. */
export interface ProgressEvent {
  /** The file's name. */
  name: string;
  /** Bytes of the file held by the receiver so far (resumed ones included). */
  bytes: number;
  /** The file's size. */
  total: number;
  /** Chunk frames sent again in repair rounds so far. */
  retransmittedChunks: number;
}

/** What happens to one chunk on its way out when faults are injected. */
export type ChunkFate = "deliver" | "lose" | "corrupt";

/**
 * Faults injected into outgoing chunks (the seed's error simulation): the
 * engine owns this interface, and `faults/simulator.ts` implements it, so
 * the engine never depends on the simulator.
 */
export interface ChunkFaults {
  /** The order in which chunks `seqs` are sent. */
  order(seqs: readonly number[]): number[];
  /** What happens to chunk `seq` (or the frame `what` names) this time it is sent. */
  fate(seq: number, what?: string): ChunkFate;
  /** Damages `bytes` in place (a chunk whose fate is `corrupt`). */
  corrupt(bytes: Uint8Array): void;
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
  /** Chunks the receiver rebuilt from parity instead of asking again. */
  rebuiltChunks?: number;
  /** Transmission rounds: 1 plus the repair rounds used. */
  attempts: number;
  /** Bytes this side put on (sender) or took off (receiver) the wire for this transfer. */
  wireBytes: number;
  /** Chunks the receiver already held from an earlier run. */
  resumedChunks: number;
  /** Bytes in those chunks. */
  resumedBytes: number;
}

/**
 * How far behind the newest arrival a missing chunk of a first round must
 * be before the receiver asks for it early: a chunk this many places behind
 * one that arrived was sent before it, so it is taken as lost, not late.
 * Links that reorder further than this only cost a chunk sent twice; the
 * fault simulator reorders within windows of this size.
 */
export const OVERDUE_DISTANCE = 8;

/** Times one chunk may be asked for during a first round (its repair may be lost too). */
export const MAX_EARLY_ASKS = 3;

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

/** Sequence numbers shown in one log line. */
const MAX_LOGGED_SEQS = 20;

/** `[1, 2, 3]`, or the first few and a count when the list is long. */
export function formatSeqs(seqs: readonly number[]): string {
  if (seqs.length <= MAX_LOGGED_SEQS) return `[${seqs.join(", ")}]`;
  return `[${seqs.slice(0, MAX_LOGGED_SEQS).join(", ")}, ... ${
    seqs.length - MAX_LOGGED_SEQS
  } more]`;
}
