/**
 * The tail of an S3 upload: the bytes held from the start of the first
 * part not yet uploaded (whole chunks, then part of one), which an HTTP
 * request that ended mid-part leaves. It is stored as an object of its own
 * at a checkpoint, so the next request, on any server, goes on from there.
 *
 * @module
 */

import { ChunkBitmap } from "../../engine/bitmap.ts";
import { chunkLength } from "../../engine/chunks.ts";
import type { Manifest } from "../../engine/resume_state.ts";
import type { Bucket, Part } from "./bucket.ts";
import type { PartBuffers } from "./part_buffers.ts";
import type { ResumeRecord } from "./resume_records.ts";

/** The bytes a tail object would hold now. */
export interface TailRun {
  /** The part it starts. */
  index: number;
  pieces: Uint8Array[];
  bytes: number;
}

/**
 * The tail held in memory now: from the start of the first part not in
 * `parts`, its chunks without a gap, then `partial` when it is the next
 * chunk's start. Empty when that part is whole (its upload stores it).
 */
export function tailRun(
  buffered: PartBuffers,
  parts: Map<number, Part>,
  partial: { seq: number; bytes: Uint8Array } | undefined,
): TailRun {
  let index = 0;
  while (parts.has(index)) index++;
  const pieces: Uint8Array[] = [];
  const seqs = buffered.seqsOf(index);
  let next = seqs[0] ?? 0;
  for (const seq of seqs) {
    const kept = buffered.get(seq);
    if (!kept) break;
    pieces.push(kept.bytes);
    next = seq + 1;
  }
  if (pieces.length === seqs.length) return { index, pieces: [], bytes: 0 };
  if (partial && partial.seq === next) pieces.push(partial.bytes);
  const bytes = pieces.reduce((sum, piece) => sum + piece.length, 0);
  return { index, pieces, bytes };
}

/** The chunks held in the store: those of `parts`, and the whole ones of the tail. */
export function storedHave(
  manifest: Manifest,
  buffered: PartBuffers,
  parts: Map<number, Part>,
  tail: { part: number; bytes: number } | undefined,
): ChunkBitmap {
  const have = new ChunkBitmap(buffered.count);
  for (const index of parts.keys()) {
    for (const seq of buffered.seqsOf(index)) have.add(seq);
  }
  if (tail) {
    let at = 0;
    for (const seq of buffered.seqsOf(tail.part)) {
      at += chunkLength(seq, manifest.size, manifest.chunkSize);
      if (at > tail.bytes) break;
      have.add(seq);
    }
  }
  return have;
}

/**
 * The tail to record: `run` stored now when asked (a checkpoint) and it
 * changed since `record`; else the tail recorded, while it still starts
 * the first part not uploaded.
 */
export async function tailToRecord(
  bucket: Bucket,
  record: ResumeRecord,
  run: TailRun,
  store: boolean,
): Promise<ResumeRecord["tail"]> {
  const old = record.tail;
  if (!store) return old?.part === run.index ? old : undefined;
  if (run.bytes === 0) {
    if (old) await bucket.delete(old.key);
    return undefined;
  }
  if (old && old.part === run.index && old.bytes === run.bytes) return old;
  const key = `${record.staging}.tail`;
  const stored = await bucket.put(key, run.pieces);
  if (stored === "conflict") throw new Error("unreachable: no condition");
  return { key, etag: stored.etag, part: run.index, bytes: run.bytes };
}
