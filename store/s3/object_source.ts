/**
 * Reading an S3 object at any offset, as the engine's `ChunkSource`: one
 * streamed ranged `GET` serves reads that follow each other (a first round
 * of chunks, an HTTP download), and a read elsewhere (a chunk asked for
 * again) is a ranged `GET` of its own, unless the next read follows it, in
 * which case the stream moves there. Every `GET` names the object's entity
 * tag (`If-Match`), so an object replaced while it is read fails the read
 * instead of mixing two versions.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { TransferError } from "../../base/errors.ts";
import type { ChunkSource } from "../../engine/chunk_source.ts";
import { type Bucket, expect } from "./bucket.ts";
import type { S3Answer } from "./client.ts";

/** Bytes read at a time when an object is hashed whole. */
const HASH_PIECE_BYTES = 1024 * 1024;

/** A stream of the object from `position` on. */
interface Stream {
  reader: ReadableStreamDefaultReader<Uint8Array>;
  position: number;
  /** Bytes read from the stream but not handed out yet. */
  left: Uint8Array | undefined;
}

/** An object read at any offset; see the module docs. */
export class ObjectSource implements ChunkSource, Disposable {
  readonly #bucket: Bucket;
  readonly #key: string;
  readonly #etag: string;
  readonly #size: number;
  #stream: Stream | undefined;
  #lastEnd = 0;

  /** Reads `key` (of `size` bytes) while it keeps entity tag `etag`. */
  constructor(bucket: Bucket, key: string, etag: string, size: number) {
    this.#bucket = bucket;
    this.#key = key;
    this.#etag = etag;
    this.#size = size;
  }

  async readAt(offset: number, bytes: Uint8Array): Promise<number> {
    const length = Math.max(0, Math.min(bytes.length, this.#size - offset));
    if (length === 0) return 0;
    const target = bytes.subarray(0, length);
    if (this.#stream?.position !== offset && offset === this.#lastEnd) {
      await this.#open(offset);
    }
    if (this.#stream?.position === offset) {
      await this.#fromStream(target);
    } else {
      await this.#ranged(offset, target);
    }
    this.#lastEnd = offset + length;
    return length;
  }

  /** Moves the stream to `offset` (to the end of the object). */
  async #open(offset: number): Promise<void> {
    this.#cancel();
    const response = await this.#bucket.client.open({
      method: "GET",
      key: this.#key,
      headers: {
        range: `bytes=${offset}-${this.#size - 1}`,
        "if-match": this.#etag,
      },
    });
    await this.#check(response);
    this.#stream = {
      reader: response.body!.getReader(),
      position: offset,
      left: undefined,
    };
  }

  async #fromStream(target: Uint8Array): Promise<void> {
    const stream = this.#stream!;
    let filled = 0;
    try {
      while (filled < target.length) {
        let piece = stream.left;
        stream.left = undefined;
        if (!piece) {
          const { done, value } = await stream.reader.read();
          if (done) throw new Error("the object ended early");
          piece = value;
        }
        const taken = Math.min(piece.length, target.length - filled);
        target.set(piece.subarray(0, taken), filled);
        filled += taken;
        if (taken < piece.length) stream.left = piece.subarray(taken);
      }
      stream.position += filled;
    } catch (error) {
      this.#cancel();
      if (error instanceof TransferError) throw error;
      // The gateway went away mid-stream: one ranged read, maybe through another.
      await this.#ranged(
        stream.position + filled,
        target.subarray(filled),
      );
    }
  }

  async #ranged(offset: number, target: Uint8Array): Promise<void> {
    const response = await this.#bucket.client.open({
      method: "GET",
      key: this.#key,
      headers: {
        range: `bytes=${offset}-${offset + target.length - 1}`,
        "if-match": this.#etag,
      },
    });
    await this.#check(response);
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.length !== target.length) {
      throw new TransferError(
        `Cannot read ${
          JSON.stringify(this.#key)
        }: ${bytes.length} bytes at ${offset}, not ${target.length}`,
        { retryable: true },
      );
    }
    target.set(bytes);
  }

  /** Throws when `response` is not the bytes asked for (the object changed or went). */
  async #check(response: Response): Promise<void> {
    if (response.status === 206 || response.status === 200) return;
    const text = await response.text();
    if (response.status === 412 || response.status === 404) {
      throw new TransferError(
        `Cannot read ${
          JSON.stringify(this.#key)
        }: it was replaced or removed while being read`,
        { retryable: true },
      );
    }
    const answer: S3Answer = {
      status: response.status,
      headers: response.headers,
      text,
    };
    expect(answer, [200, 206], `read ${JSON.stringify(this.#key)}`);
  }

  #cancel(): void {
    this.#stream?.reader.cancel().catch(() => undefined);
    this.#stream = undefined;
  }

  /** Stops any stream under way. */
  close(): void {
    this.#cancel();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The SHA-256 (hex) of the object `key`, read whole; it must have `size` bytes. */
export async function hashObject(
  bucket: Bucket,
  key: string,
  size: number,
): Promise<string> {
  const head = await bucket.head(key);
  if (!head) {
    throw new TransferError(`Cannot hash ${JSON.stringify(key)}: it is gone`, {
      retryable: true,
    });
  }
  using source = new ObjectSource(bucket, key, head.etag, head.size);
  const hash = createHash("sha256");
  const piece = new Uint8Array(HASH_PIECE_BYTES);
  for (let at = 0; at < size;) {
    const got = await source.readAt(at, piece);
    if (got === 0) break;
    hash.update(piece.subarray(0, got));
    at += got;
  }
  if (head.size !== size) {
    throw new TransferError(
      `Cannot hash ${JSON.stringify(key)}: ${head.size} bytes, not ${size}`,
      { retryable: true },
    );
  }
  return hash.digest("hex");
}
