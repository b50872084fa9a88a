/**
 * A fixed-size set of chunk sequence numbers, stored as bits, with a compact
 * base64 form for the wire and the state file.
 *
 * @module
 */

import { Buffer } from "node:buffer";

/** Which chunks of a file are held (verified). */
export class ChunkBitmap {
  /** Number of chunks the bitmap covers. */
  readonly size: number;
  #bits: Uint8Array;
  #count = 0;

  /** An empty bitmap for `size` chunks. */
  constructor(size: number) {
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new RangeError(`Cannot create bitmap: invalid size ${size}`);
    }
    this.size = size;
    this.#bits = new Uint8Array(Math.ceil(size / 8));
  }

  /** Decodes the base64 form; a length that does not fit `size` is a `SyntaxError`. */
  static fromBase64(encoded: string, size: number): ChunkBitmap {
    const bitmap = new ChunkBitmap(size);
    const bytes = Buffer.from(encoded, "base64");
    if (bytes.length !== bitmap.#bits.length) {
      throw new SyntaxError(
        `Cannot decode bitmap: ${bytes.length} bytes for ${size} chunks`,
      );
    }
    for (let seq = 0; seq < size; seq++) {
      if (bytes[seq >> 3]! & (1 << (seq & 7))) bitmap.add(seq);
    }
    return bitmap;
  }

  /** How many chunks are set. */
  get count(): number {
    return this.#count;
  }

  /** True when every chunk is set. */
  get complete(): boolean {
    return this.#count === this.size;
  }

  /** Whether chunk `seq` is set. */
  has(seq: number): boolean {
    return (this.#bits[seq >> 3]! & (1 << (seq & 7))) !== 0;
  }

  /** Sets chunk `seq`. */
  add(seq: number): void {
    if (!Number.isInteger(seq) || seq < 0 || seq >= this.size) {
      throw new RangeError(
        `Cannot add chunk ${seq}: outside 0..${this.size - 1}`,
      );
    }
    if (this.has(seq)) return;
    this.#bits[seq >> 3]! |= 1 << (seq & 7);
    this.#count++;
  }

  /** Clears every chunk `other` lacks (undoing adds that must not count). */
  retainOnly(other: ChunkBitmap): void {
    for (let seq = 0; seq < this.size; seq++) {
      if (!this.has(seq) || other.has(seq)) continue;
      this.#bits[seq >> 3]! &= ~(1 << (seq & 7));
      this.#count--;
    }
  }

  /** The sequence numbers not set, in order. */
  missing(): number[] {
    const out: number[] = [];
    for (let seq = 0; seq < this.size; seq++) if (!this.has(seq)) out.push(seq);
    return out;
  }

  /** The base64 form. */
  toBase64(): string {
    return Buffer.from(this.#bits).toString("base64");
  }
}
