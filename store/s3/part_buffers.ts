/**
 * The chunks of an S3 upload kept in memory, by part, until their part is
 * whole and uploaded (and hashed into the running digest).
 *
 * @module
 */

/** A chunk kept, and who to tell once it is let go. */
export interface Buffered {
  bytes: Uint8Array;
  release: ((payload: Uint8Array) => void) | undefined;
}

/** Chunks in memory, by part index (part number - 1). */
export class PartBuffers {
  /** Chunks per part. */
  readonly partChunks: number;
  /** Chunks in the file. */
  readonly count: number;
  #parts = new Map<number, Map<number, Buffered>>();
  #bytes = 0;

  /** Buffers of a file of `count` chunks in parts of `partChunks`. */
  constructor(partChunks: number, count: number) {
    this.partChunks = partChunks;
    this.count = count;
  }

  /** Bytes kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Parts with chunks in memory. */
  get size(): number {
    return this.#parts.size;
  }

  /** The part chunk `seq` belongs to. */
  indexOf(seq: number): number {
    return Math.floor(seq / this.partChunks);
  }

  /** The chunks of part `index`. */
  seqsOf(index: number): number[] {
    const first = index * this.partChunks;
    const last = Math.min(this.count, first + this.partChunks);
    return Array.from(
      { length: Math.max(0, last - first) },
      (_, i) => first + i,
    );
  }

  /** Whether part `index` has chunks in memory. */
  has(index: number): boolean {
    return this.#parts.has(index);
  }

  /** Chunk `seq`, when kept. */
  get(seq: number): Buffered | undefined {
    return this.#parts.get(this.indexOf(seq))?.get(seq);
  }

  /** Keeps chunk `seq`. */
  keep(seq: number, bytes: Uint8Array, release: Buffered["release"]): void {
    const index = this.indexOf(seq);
    let part = this.#parts.get(index);
    if (!part) this.#parts.set(index, part = new Map());
    part.set(seq, { bytes, release });
    this.#bytes += bytes.length;
  }

  /** Whether every chunk of part `index` is kept. */
  isWhole(index: number): boolean {
    return this.#parts.get(index)?.size === this.seqsOf(index).length;
  }

  /** The chunks of whole part `index`, in order. */
  pieces(index: number): Uint8Array[] {
    return this.seqsOf(index).map((seq) => this.get(seq)!.bytes);
  }

  /** Part indexes with chunks in memory. */
  indices(): number[] {
    return [...this.#parts.keys()];
  }

  /** Lets go of part `index`'s chunks. */
  free(index: number): void {
    for (const { bytes, release } of this.#parts.get(index)?.values() ?? []) {
      this.#bytes -= bytes.length;
      release?.(bytes);
    }
    this.#parts.delete(index);
  }

  /** Lets go of every chunk. */
  freeAll(): void {
    for (const index of this.indices()) this.free(index);
  }

  /** What is kept now, to go back to with {@linkcode restore} (the chunks themselves are shared). */
  copy(): Map<number, Map<number, Buffered>> {
    return new Map(
      [...this.#parts].map(([index, part]) => [index, new Map(part)]),
    );
  }

  /** Goes back to a {@linkcode copy}. */
  restore(parts: Map<number, Map<number, Buffered>>): void {
    this.#parts = parts;
    this.#bytes = 0;
    for (const part of parts.values()) {
      for (const { bytes } of part.values()) this.#bytes += bytes.length;
    }
  }
}
