/**
 * A stored file's parity on disk: per group of `k` chunks, `m` Reed-Solomon
 * parity shards, plus the CRC-32 of every data chunk and parity shard, so a
 * rotted chunk can be found and rebuilt (as par2 and ZFS do). The file's
 * SHA-256 is recorded too: parity is only trusted for the file it was made
 * from, and every repair is checked against that digest.
 *
 * Layout (big-endian): `FTVPAR1\n`, a `u32` header length, the header
 * (`u32` k, m, chunk size, `f64` file size, 32-byte SHA-256, `u32` chunk
 * count, group count, the data CRCs, the parity CRCs, and a `u32` CRC of
 * all of it), then the parity shards, group by group, each `shardSize`
 * bytes (the chunk size, or the file size for a file of less than a chunk).
 *
 * @module
 */

import { crc32 } from "node:zlib";
import { Buffer } from "node:buffer";
import { chunkCount } from "../chunks.ts";
import { GroupEncoder } from "./group_encoder.ts";

const MAGIC = new TextEncoder().encode("FTVPAR1\n");
/** Bytes of the header before the CRC lists. */
const FIXED_BYTES = 4 * 3 + 8 + 32 + 4 * 2;

/** What a parity file describes. */
export interface ParityLayout {
  /** Data chunks per group. */
  k: number;
  /** Parity shards per group. */
  m: number;
  /** Bytes per chunk. */
  chunkSize: number;
  /** The file's size. */
  size: number;
}

/** Chunks, groups and shard size of a layout. */
export function shapeOf(layout: ParityLayout) {
  const chunks = chunkCount(layout.size, layout.chunkSize);
  const groups = Math.ceil(chunks / layout.k);
  const shardSize = Math.min(layout.chunkSize, layout.size);
  const headerBytes = FIXED_BYTES + 4 * (chunks + groups * layout.m) + 4;
  const shardsAt = MAGIC.length + 4 + headerBytes;
  return { chunks, groups, shardSize, headerBytes, shardsAt };
}

/**
 * Writes a parity file while a file's chunks pass by in order: `add` each
 * chunk, then `finish` with the file's digest. The caller names the path
 * (usually a temporary renamed into place afterwards).
 */
export class ParityWriter {
  readonly layout: ParityLayout;
  #file: Deno.FsFile;
  #encoder: GroupEncoder | undefined;
  #shape: ReturnType<typeof shapeOf>;
  #dataCrcs: Uint32Array;
  #parityCrcs: Uint32Array;
  #next = 0;

  private constructor(file: Deno.FsFile, layout: ParityLayout) {
    this.#file = file;
    this.layout = layout;
    this.#shape = shapeOf(layout);
    this.#dataCrcs = new Uint32Array(this.#shape.chunks);
    this.#parityCrcs = new Uint32Array(this.#shape.groups * layout.m);
    this.#encoder = this.#shape.shardSize > 0
      ? new GroupEncoder(layout.k, layout.m, this.#shape.shardSize)
      : undefined;
  }

  /** Creates (or truncates) the parity file at `path`. */
  static async create(
    path: string,
    layout: ParityLayout,
  ): Promise<ParityWriter> {
    const file = await Deno.open(path, {
      read: true,
      write: true,
      create: true,
      truncate: true,
    });
    return new ParityWriter(file, layout);
  }

  /** Adds chunk `seq`, which must be the next one. */
  async add(seq: number, chunk: Uint8Array): Promise<void> {
    if (seq !== this.#next) {
      throw new RangeError(
        `Cannot add chunk ${seq} to parity: expected ${this.#next}`,
      );
    }
    const { k } = this.layout;
    this.#dataCrcs[seq] = crc32(chunk);
    this.#encoder!.add(seq % k, chunk);
    this.#next++;
    if (this.#next % k === 0 || this.#next === this.#shape.chunks) {
      await this.#writeGroup(Math.floor(seq / k));
    }
  }

  async #writeGroup(group: number): Promise<void> {
    const { m } = this.layout;
    const { shardSize, shardsAt } = this.#shape;
    const parity = this.#encoder!.parity();
    await this.#file.seek(
      shardsAt + group * m * shardSize,
      Deno.SeekMode.Start,
    );
    for (let j = 0; j < m; j++) {
      this.#parityCrcs[group * m + j] = crc32(parity[j]!);
      await writeAll(this.#file, parity[j]!);
    }
    this.#encoder!.reset();
  }

  /** Writes the header with the file's digest, syncs when asked, and closes. */
  async finish(sha256: string, fsync: boolean): Promise<void> {
    try {
      if (this.#next !== this.#shape.chunks) {
        throw new RangeError(
          `Cannot finish parity: ${this.#next} of ${this.#shape.chunks} chunks added`,
        );
      }
      await this.#file.seek(0, Deno.SeekMode.Start);
      await writeAll(
        this.#file,
        encodeHeader(this.layout, sha256, this.#dataCrcs, this.#parityCrcs),
      );
      if (fsync) await this.#file.sync();
    } finally {
      this.close();
    }
  }

  /** Closes without finishing (the caller removes the file). */
  close(): void {
    try {
      this.#file.close();
    } catch {
      // Closed already.
    }
  }
}

function encodeHeader(
  layout: ParityLayout,
  sha256: string,
  dataCrcs: Uint32Array,
  parityCrcs: Uint32Array,
): Uint8Array {
  const { headerBytes, chunks, groups } = shapeOf(layout);
  const bytes = new Uint8Array(MAGIC.length + 4 + headerBytes);
  const view = new DataView(bytes.buffer);
  bytes.set(MAGIC, 0);
  view.setUint32(MAGIC.length, headerBytes);
  let at = MAGIC.length + 4;
  const start = at;
  for (const n of [layout.k, layout.m, layout.chunkSize]) {
    view.setUint32(at, n);
    at += 4;
  }
  view.setFloat64(at, layout.size);
  at += 8;
  bytes.set(Buffer.from(sha256, "hex"), at);
  at += 32;
  view.setUint32(at, chunks);
  view.setUint32(at + 4, groups);
  at += 8;
  for (const crc of [...dataCrcs, ...parityCrcs]) {
    view.setUint32(at, crc);
    at += 4;
  }
  view.setUint32(at, crc32(bytes.subarray(start, at)));
  return bytes;
}

/** A parity file read back: its layout, digest and CRCs, and its shards on demand. */
export class ParityFile {
  readonly layout: ParityLayout;
  /** The digest of the file the parity was made from. */
  readonly sha256: string;
  /** CRC-32 of each data chunk. */
  readonly dataCrcs: Uint32Array;
  /** CRC-32 of each parity shard, group by group. */
  readonly parityCrcs: Uint32Array;
  #path: string;

  private constructor(
    path: string,
    layout: ParityLayout,
    sha256: string,
    dataCrcs: Uint32Array,
    parityCrcs: Uint32Array,
  ) {
    this.#path = path;
    this.layout = layout;
    this.sha256 = sha256;
    this.dataCrcs = dataCrcs;
    this.parityCrcs = parityCrcs;
  }

  /** Reads the header at `path`; `undefined` when absent or not a whole, consistent parity file. */
  static async open(path: string): Promise<ParityFile | undefined> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch {
      return undefined;
    }
    using opened = file;
    const prefix = new Uint8Array(MAGIC.length + 4);
    if (!(await readFull(opened, prefix))) return undefined;
    if (!prefix.subarray(0, MAGIC.length).every((b, i) => b === MAGIC[i])) {
      return undefined;
    }
    const headerBytes = new DataView(prefix.buffer).getUint32(MAGIC.length);
    if (headerBytes < FIXED_BYTES + 4 || headerBytes > 1 << 30) {
      return undefined;
    }
    const header = new Uint8Array(headerBytes);
    if (!(await readFull(opened, header))) return undefined;
    return decodeHeader(path, header, (await opened.stat()).size);
  }

  /** Reads parity shard `j` of `group` into `into` (the shard size). */
  async readShard(group: number, j: number, into: Uint8Array): Promise<void> {
    const { shardSize, shardsAt } = shapeOf(this.layout);
    using file = await Deno.open(this.#path, { read: true });
    await file.seek(
      shardsAt + (group * this.layout.m + j) * shardSize,
      Deno.SeekMode.Start,
    );
    if (!(await readFull(file, into))) {
      throw new RangeError(
        `Cannot read parity shard ${j} of group ${group}: the file ends early`,
      );
    }
  }

  /** Builds the parsed header; see {@linkcode ParityFile.open}. */
  static fromHeader(
    path: string,
    layout: ParityLayout,
    sha256: string,
    dataCrcs: Uint32Array,
    parityCrcs: Uint32Array,
  ): ParityFile {
    return new ParityFile(path, layout, sha256, dataCrcs, parityCrcs);
  }
}

function decodeHeader(
  path: string,
  header: Uint8Array,
  fileSize: number,
): ParityFile | undefined {
  const view = new DataView(header.buffer);
  const end = header.length - 4;
  if (view.getUint32(end) !== crc32(header.subarray(0, end))) return undefined;
  const layout: ParityLayout = {
    k: view.getUint32(0),
    m: view.getUint32(4),
    chunkSize: view.getUint32(8),
    size: view.getFloat64(12),
  };
  if (
    layout.k < 1 || layout.m < 1 || layout.chunkSize < 1 ||
    !Number.isSafeInteger(layout.size)
  ) {
    return undefined;
  }
  const shape = shapeOf(layout);
  if (shape.headerBytes !== header.length) return undefined;
  if (fileSize < shape.shardsAt + shape.groups * layout.m * shape.shardSize) {
    return undefined;
  }
  const sha256 = Buffer.from(header.subarray(20, 52)).toString("hex");
  const crcs = (from: number, count: number) =>
    Uint32Array.from({ length: count }, (_, i) => view.getUint32(from + 4 * i));
  const dataAt = FIXED_BYTES;
  const parityAt = dataAt + 4 * shape.chunks;
  return ParityFile.fromHeader(
    path,
    layout,
    sha256,
    crcs(dataAt, shape.chunks),
    crcs(parityAt, shape.groups * layout.m),
  );
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let written = 0; written < bytes.length;) {
    written += await file.write(bytes.subarray(written));
  }
}

/** Fills `into` from `file`; false when the file ends first. */
export async function readFull(
  file: Deno.FsFile,
  into: Uint8Array,
): Promise<boolean> {
  for (let filled = 0; filled < into.length;) {
    const got = await file.read(into.subarray(filled));
    if (got === null) return false;
    filled += got;
  }
  return true;
}
