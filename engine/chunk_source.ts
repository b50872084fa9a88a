/**
 * Where a sender reads a file's chunks from: the interface the engine owns
 * and every store implements (a local file, an object read with ranges),
 * so the sender never knows which one it is.
 *
 * @module
 */

/** A file's bytes, read at any offset. */
export interface ChunkSource {
  /**
   * Fills `bytes` from byte `offset` of the file; resolves to the bytes
   * filled, fewer only where the file ends first.
   */
  readAt(offset: number, bytes: Uint8Array): Promise<number>;
}

/**
 * A local file as a {@linkcode ChunkSource}: it seeks only when a read
 * does not start where the last one ended.
 *
 * @example
 * ```ts
 * import { FileSource } from "./chunk_source.ts";
 * using file = await Deno.open("big.iso");
 * const first = new Uint8Array(4096);
 * await new FileSource(file).readAt(0, first);
 * ```
 */
export class FileSource implements ChunkSource {
  readonly #file: Deno.FsFile;
  #position = 0;

  /** Reads `file`, whose position is at its start. */
  constructor(file: Deno.FsFile) {
    this.#file = file;
  }

  async readAt(offset: number, bytes: Uint8Array): Promise<number> {
    if (this.#position !== offset) {
      await this.#file.seek(offset, Deno.SeekMode.Start);
      this.#position = offset;
    }
    let filled = 0;
    while (filled < bytes.length) {
      const got = await this.#file.read(bytes.subarray(filled));
      if (got === null) break;
      filled += got;
      this.#position += got;
    }
    return filled;
  }
}
