/**
 * The store's parity: for each stored file, Reed-Solomon parity kept
 * beside it under `.ftv/parity/` (see `engine/parity/parity_file.ts`), made
 * as uploads arrive and added to older files by the store check. With it, a
 * chunk that rots is rebuilt instead of lost: by the store check, and by a
 * `get` that finds a chunk's CRC wrong while reading it, which repairs the
 * file first and then serves it.
 *
 * @module
 */

import { TransferError } from "../../base/errors.ts";
import type { Logger } from "../../base/log.ts";
import { removeIfPresent } from "../../engine/atomic_file.ts";
import { crc32 } from "node:zlib";
import {
  type ParityFile,
  ParityFile as Parity,
  ParityWriter,
  readFull,
} from "../../engine/parity/parity_file.ts";
import {
  repairFromParity,
  repairGroup,
  type RepairReport,
} from "../../engine/parity/repair.ts";
import type { ChunkGuard } from "../../engine/sender.ts";
import { META_DIR } from "../../protocol/names.ts";
import { chunkLength } from "../../engine/chunks.ts";

/** Groups of `k` chunks with `m` parity shards. */
export interface ParityShape {
  k: number;
  m: number;
}

/** Where a store keeps parity, and how much. */
export class ParityStore {
  readonly dir: string;
  /** The shape given to new parity; `undefined` when the server keeps none. */
  readonly shape: ParityShape | undefined;
  #chunkSize: number;

  /** Parity for the files under `dir`, in chunks of `chunkSize`. */
  constructor(dir: string, shape: ParityShape | undefined, chunkSize: number) {
    this.dir = dir;
    this.shape = shape;
    this.#chunkSize = chunkSize;
  }

  /** The parity file of `name`. */
  pathOf(name: string): string {
    return `${this.dir}/${META_DIR}/parity/${name}.ftvpar`;
  }

  /** The parity option for a ChunkStore receiving `name` (its folder made), or none. */
  async forUpload(
    name: string,
  ): Promise<{ k: number; m: number; path: string } | undefined> {
    if (!this.shape) return undefined;
    const path = this.pathOf(name);
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    return { ...this.shape, path };
  }

  /** The parity of `name` when it was made from a file with `sha256`. */
  async open(name: string, sha256: string): Promise<ParityFile | undefined> {
    const parity = await Parity.open(this.pathOf(name));
    return parity?.sha256 === sha256 ? parity : undefined;
  }

  /** Drops the parity of `name` (the file was replaced by one without). */
  async remove(name: string): Promise<void> {
    await removeIfPresent(this.pathOf(name));
  }

  /**
   * A guard that checks each chunk sent of `name` against its parity's
   * CRCs, repairing the file from parity when one is wrong; none without
   * parity for that digest.
   */
  async guardFor(
    name: string,
    path: string,
    sha256: string,
    log: Logger,
  ): Promise<ChunkGuard | undefined> {
    const parity = await this.open(name, sha256);
    return parity ? new ParityGuard(name, path, parity, log) : undefined;
  }

  /** Rebuilds what it can of `name` (at `path`) from its parity; none without parity for `sha256`. */
  async repair(
    name: string,
    path: string,
    sha256: string,
    log: Logger,
  ): Promise<RepairReport | undefined> {
    const parity = await this.open(name, sha256);
    if (!parity) return undefined;
    using file = await Deno.open(path, { read: true, write: true });
    return await repairFromParity(
      file,
      parity,
      (seq, group) =>
        log.info(
          `Repaired chunk ${seq} of ${name} from parity (group ${group})`,
        ),
    );
  }

  /** Makes parity for `name` from its bytes at `path`, whose digest is `sha256`. */
  async add(
    name: string,
    path: string,
    sha256: string,
    size: number,
  ): Promise<void> {
    const shape = this.shape;
    if (!shape) return;
    const target = this.pathOf(name);
    await Deno.mkdir(target.slice(0, target.lastIndexOf("/")), {
      recursive: true,
    });
    const layout = { ...shape, chunkSize: this.#chunkSize, size };
    const writer = await ParityWriter.create(`${target}.tmp`, layout);
    try {
      using file = await Deno.open(path, { read: true });
      const buffer = new Uint8Array(this.#chunkSize);
      for (let seq = 0; seq * this.#chunkSize < size; seq++) {
        const chunk = buffer.subarray(
          0,
          chunkLength(seq, size, this.#chunkSize),
        );
        if (!(await readFull(file, chunk))) {
          throw new TransferError(`Cannot add parity to ${name}: it shrank`);
        }
        await writer.add(seq, chunk);
      }
      await writer.finish(sha256, false);
      await Deno.rename(`${target}.tmp`, target);
    } catch (error) {
      writer.close();
      await removeIfPresent(`${target}.tmp`);
      throw error;
    }
  }
}

/**
 * Checks chunks being sent against the parity's CRCs (a chunk sent may span
 * several parity chunks, for compressible files); a wrong one has its
 * group rebuilt in the file, and the bytes to send are read again.
 */
class ParityGuard implements ChunkGuard {
  #name: string;
  #path: string;
  #parity: ParityFile;
  #log: Logger;

  constructor(name: string, path: string, parity: ParityFile, log: Logger) {
    this.#name = name;
    this.#path = path;
    this.#parity = parity;
    this.#log = log;
  }

  get chunkSize(): number {
    return this.#parity.layout.chunkSize;
  }

  async check(offset: number, bytes: Uint8Array): Promise<void> {
    const { chunkSize, k } = this.#parity.layout;
    for (let at = 0; at < bytes.length; at += chunkSize) {
      const seq = (offset + at) / chunkSize;
      const piece = bytes.subarray(at, Math.min(bytes.length, at + chunkSize));
      if (
        !Number.isInteger(seq) || crc32(piece) === this.#parity.dataCrcs[seq]
      ) continue;
      using file = await Deno.open(this.#path, { read: true, write: true });
      const group = Math.floor(seq / k);
      const rebuilt = await repairGroup(file, this.#parity, group);
      for (const repaired of rebuilt ?? []) {
        this.#log.info(
          `Repaired chunk ${repaired} of ${this.#name} from parity (group ${group}) before sending it`,
        );
      }
      await file.seek(offset + at, Deno.SeekMode.Start);
      if (
        !rebuilt || !(await readFull(file, piece)) ||
        crc32(piece) !== this.#parity.dataCrcs[seq]
      ) {
        throw new TransferError(
          `Cannot send ${this.#name}: chunk ${seq} is damaged beyond what its parity can rebuild`,
        );
      }
    }
  }
}
