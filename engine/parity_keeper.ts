/**
 * The parity a {@linkcode ChunkStore} keeps for the file it receives: fed
 * each chunk in order as it is hashed, written to a temporary beside the
 * parity path, and renamed into place once the file holds its final name.
 * Parity is only ever an extra: any failure drops it (and says why), never
 * the file.
 *
 * @module
 */

import { removeIfPresent } from "./atomic_file.ts";
import { ParityWriter } from "./parity/parity_file.ts";

/** Groups of `k` chunks with `m` parity shards, kept at `path`. */
export interface ParityWanted {
  k: number;
  m: number;
  path: string;
}

/** The parity being written for one received file. */
export class ParityKeeper {
  /** Why the parity could not be kept, once it could not. */
  failure: Error | undefined;
  #wanted: ParityWanted | undefined;
  #layout: { chunkSize: number; size: number };
  #writer: ParityWriter | undefined;

  /** Parity as `wanted` (none when undefined) for a file of `size` bytes in chunks of `chunkSize`. */
  constructor(
    wanted: ParityWanted | undefined,
    layout: { chunkSize: number; size: number },
  ) {
    this.#wanted = wanted;
    this.#layout = layout;
  }

  /** Whether parity is being written now. */
  get writing(): boolean {
    return this.#writer !== undefined;
  }

  /** Feeds chunk `seq` (the next one in order). */
  async add(seq: number, bytes: Uint8Array): Promise<void> {
    const wanted = this.#wanted;
    if (!wanted || this.failure) return;
    try {
      this.#writer ??= await ParityWriter.create(`${wanted.path}.tmp`, {
        k: wanted.k,
        m: wanted.m,
        ...this.#layout,
      });
      await this.#writer.add(seq, bytes);
    } catch (error) {
      this.drop(error as Error);
    }
  }

  /** Gives up the parity: closes and removes its temporary. */
  drop(failure?: Error): void {
    this.failure ??= failure;
    this.#writer?.close();
    this.#writer = undefined;
    if (this.#wanted) {
      removeIfPresent(`${this.#wanted.path}.tmp`).catch(() => undefined);
    }
  }

  /** Writes the parity file of the finished file (digest `sha256`) into place. */
  async finish(sha256: string | undefined, fsync: boolean): Promise<void> {
    const wanted = this.#wanted;
    if (!wanted || !this.#writer || sha256 === undefined) return;
    try {
      await this.#writer.finish(sha256, fsync);
      await Deno.rename(`${wanted.path}.tmp`, wanted.path);
    } catch (error) {
      this.drop(error as Error);
    } finally {
      this.#writer = undefined;
    }
  }
}
