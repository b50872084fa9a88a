/**
 * Pipelined requests over one framed connection: requests are written back
 * to back in batches within a bounded window, while a reader hands each
 * reply to its request in order. Many small requests then cost one round
 * trip in all instead of one each.
 *
 * @module
 */

import type { FramedConnection } from "./connection.ts";
import type { RateLimiter } from "./rate_limit.ts";

/** Most requests written before their replies arrive. */
export const WINDOW_FILES = 256;
/** Most request bytes written before their replies arrive. */
export const WINDOW_BYTES = 16 * 1024 * 1024;
/** Frames are gathered into writes of about this size: one socket write per file would cost more than the file. */
const BATCH_BYTES = 64 * 1024;

/**
 * Requests written back to back, in batches, within a window of
 * {@linkcode WINDOW_FILES} files and {@linkcode WINDOW_BYTES} bytes, while a
 * reader hands each reply, in order, to its request's callback. The server
 * answers every request exactly once and in order, so replies need no
 * matching beyond their position.
 */
export class Pipeline<R> {
  #fc: FramedConnection;
  #limiter: RateLimiter | undefined;
  #receive: (fc: FramedConnection) => Promise<R>;
  #batch = new Uint8Array(BATCH_BYTES);
  #used = 0;
  #inflight: { bytes: number; settle: (reply: R) => void }[] = [];
  #bytes = 0;
  #writing = true;
  #itemsArrived: (() => void) | undefined;
  #spaceFreed: (() => void) | undefined;
  #failure: unknown;
  #reader: Promise<void>;

  /** A pipeline whose replies, one per request, are read by `receive`. */
  constructor(
    fc: FramedConnection,
    limiter: RateLimiter | undefined,
    receive: (fc: FramedConnection) => Promise<R>,
  ) {
    this.#fc = fc;
    this.#limiter = limiter;
    this.#receive = receive;
    this.#reader = this.#read().catch((error) => {
      this.#failure ??= error;
      this.#spaceFreed?.();
      fc.close();
    });
  }

  /** Queues one request's frames; waits while the window is full. */
  async push(
    frames: Uint8Array[],
    bytes: number,
    settle: (reply: R) => void,
  ): Promise<void> {
    this.#check();
    for (const frame of frames) await this.#add(frame);
    this.#inflight.push({ bytes, settle });
    this.#bytes += bytes;
    this.#itemsArrived?.();
    if (!this.#full()) return;
    // Full: write what is batched, then wait until half the window is free,
    // so writes stay large instead of one file per freed slot.
    await this.#flush();
    while (
      this.#inflight.length > WINDOW_FILES / 2 || this.#bytes > WINDOW_BYTES / 2
    ) {
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#spaceFreed = resolve;
      await promise;
      this.#check();
    }
  }

  /** Writes what is batched and waits for every reply. */
  async finish(): Promise<void> {
    try {
      this.#check();
      await this.#flush();
    } catch (error) {
      this.#failure ??= error;
      this.#fc.close();
    } finally {
      this.#writing = false;
      this.#itemsArrived?.();
      await this.#reader;
    }
    this.#check();
  }

  #full(): boolean {
    return this.#inflight.length >= WINDOW_FILES || this.#bytes >= WINDOW_BYTES;
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #add(frame: Uint8Array): Promise<void> {
    if (this.#used + frame.length > this.#batch.length) await this.#flush();
    if (frame.length > this.#batch.length) return await this.#write(frame);
    this.#batch.set(frame, this.#used);
    this.#used += frame.length;
  }

  async #flush(): Promise<void> {
    if (this.#used === 0) return;
    const bytes = this.#batch.subarray(0, this.#used);
    this.#used = 0;
    await this.#write(bytes);
  }

  async #write(bytes: Uint8Array): Promise<void> {
    await this.#limiter?.consume(bytes.length);
    await this.#fc.write(bytes);
  }

  async #read(): Promise<void> {
    for (;;) {
      const head = this.#inflight[0];
      if (head === undefined) {
        if (!this.#writing) return;
        const { promise, resolve } = Promise.withResolvers<void>();
        this.#itemsArrived = resolve;
        await promise;
        this.#itemsArrived = undefined;
        continue;
      }
      const reply = await this.#receive(this.#fc);
      this.#inflight.shift();
      this.#bytes -= head.bytes;
      head.settle(reply);
      const wake = this.#spaceFreed;
      this.#spaceFreed = undefined;
      wake?.();
    }
  }
}
