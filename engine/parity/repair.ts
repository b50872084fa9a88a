/**
 * Finding and rebuilding rotted chunks of a stored file from its parity
 * file: each chunk's CRC-32 is compared with the one recorded when the file
 * was stored; a group with at most `m` bad shards (data or parity) is
 * rebuilt exactly and the rebuilt chunks are written back in place (the
 * file's times kept). More is reported, never guessed. The caller checks
 * the whole-file SHA-256 after.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { chunkLength } from "../chunks.ts";
import { zeros } from "../compression.ts";
import { type ParityFile, readFull, shapeOf } from "./parity_file.ts";
import { ReedSolomon } from "./reed_solomon.ts";

/** What a repair did. */
export interface RepairReport {
  /** Chunks rebuilt and written back, with their group. */
  repaired: { seq: number; group: number }[];
  /** Groups with more bad shards than parity: left as they were. */
  unrepairable: number[];
}

/**
 * Checks every group of `file` (open for reading and writing) against
 * `parity`, rebuilding what it can; `onRepair` is told of each chunk
 * rebuilt, for the log.
 *
 * @example
 * ```ts
 * import { ParityFile } from "./parity_file.ts";
 * import { repairFromParity } from "./repair.ts";
 * const parity = await ParityFile.open(".ftv/parity/big.iso.ftvpar");
 * using file = await Deno.open("big.iso", { read: true, write: true });
 * if (parity) console.log(await repairFromParity(file, parity));
 * ```
 */
export async function repairFromParity(
  file: Deno.FsFile,
  parity: ParityFile,
  onRepair?: (seq: number, group: number) => void,
): Promise<RepairReport> {
  const report: RepairReport = { repaired: [], unrepairable: [] };
  const { groups } = shapeOf(parity.layout);
  const buffers = new GroupBuffers(parity);
  for (let group = 0; group < groups; group++) {
    const rebuilt = await repairGroup(file, parity, group, buffers);
    if (rebuilt === undefined) report.unrepairable.push(group);
    for (const seq of rebuilt ?? []) {
      report.repaired.push({ seq, group });
      onRepair?.(seq, group);
    }
  }
  return report;
}

/** The buffers one group is read into, reused from group to group. */
export class GroupBuffers {
  readonly data: Uint8Array[];
  readonly parity: Uint8Array[];
  readonly code: ReedSolomon;

  /** Buffers for the groups of `parity`. */
  constructor(parity: ParityFile) {
    const { k, m } = parity.layout;
    const { shardSize } = shapeOf(parity.layout);
    this.data = Array.from({ length: k }, () => new Uint8Array(shardSize));
    this.parity = Array.from({ length: m }, () => new Uint8Array(shardSize));
    this.code = new ReedSolomon(k, m);
  }
}

/**
 * Checks group `group` and rebuilds its bad data chunks in place: the
 * sequence numbers rebuilt (none when all was well), or `undefined` when
 * too many shards are bad.
 */
export async function repairGroup(
  file: Deno.FsFile,
  parity: ParityFile,
  group: number,
  buffers: GroupBuffers = new GroupBuffers(parity),
): Promise<number[] | undefined> {
  const { k, m, chunkSize, size } = parity.layout;
  const { chunks, shardSize } = shapeOf(parity.layout);
  const shards: (Uint8Array | undefined)[] = [];
  const bad: number[] = [];
  for (let i = 0; i < k; i++) {
    const seq = group * k + i;
    if (seq >= chunks) {
      shards.push(zeros(shardSize)); // A short last group: zeros, never rebuilt.
      continue;
    }
    const chunk = buffers.data[i]!.subarray(
      0,
      chunkLength(seq, size, chunkSize),
    );
    await file.seek(seq * chunkSize, Deno.SeekMode.Start);
    const whole = await readFull(file, chunk);
    buffers.data[i]!.fill(0, chunk.length); // A short last chunk reads zero-padded.
    if (!whole || crc32(chunk) !== parity.dataCrcs[seq]) bad.push(i);
    shards.push(buffers.data[i]!);
  }
  if (bad.length === 0) return [];
  for (let j = 0; j < m; j++) {
    await parity.readShard(group, j, buffers.parity[j]!);
    if (crc32(buffers.parity[j]!) !== parity.parityCrcs[group * m + j]) {
      bad.push(k + j);
    }
    shards.push(buffers.parity[j]!);
  }
  for (const i of bad) if (i < k) buffers.data[i]!.fill(0);
  const result = buffers.code.reconstruct(shards, {
    missing: bad,
    dataOnly: true,
  });
  if (!result.ok) return undefined;
  const rebuilt: number[] = [];
  const before = await file.stat(); // A repair restores bytes, not the file's times.
  for (const i of result.rebuilt) {
    const seq = group * k + i;
    const chunk = shards[i]!.subarray(0, chunkLength(seq, size, chunkSize));
    await file.seek(seq * chunkSize, Deno.SeekMode.Start);
    for (let written = 0; written < chunk.length;) {
      written += await file.write(chunk.subarray(written));
    }
    rebuilt.push(seq);
  }
  if (before.mtime) await file.utime(before.atime ?? new Date(), before.mtime);
  return rebuilt;
}
