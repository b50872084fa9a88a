/**
 * A one-way delay, as a long link has: bytes read now come out `latencyMs`
 * later, while reading goes on, so the delay costs latency and not
 * throughput (unlike holding up each read). What is in flight is bounded:
 * past {@linkcode MAX_IN_FLIGHT_BYTES}, `push` waits, and the sender slows
 * down through TCP.
 *
 * @module
 */

/** Most bytes held in flight in one direction. */
export const MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024;

/** Bytes that leave `latencyMs` after they came in, in order. */
export class DelayLine {
  #latencyMs: number;
  #queue: { bytes: Uint8Array; due: number }[] = [];
  #bytes = 0;
  #wake: (() => void) | undefined;
  #room: (() => void) | undefined;
  #ended = false;
  #signal: AbortSignal;

  /** A line of `latencyMs`; aborting `signal` drops what is in flight. */
  constructor(latencyMs: number, signal: AbortSignal) {
    this.#latencyMs = latencyMs;
    this.#signal = signal;
    signal.addEventListener("abort", () => {
      this.#wake?.();
      this.#room?.();
    }, { once: true });
  }

  /** Takes a copy of `bytes`, due out `latencyMs` from now; waits while the line is full. */
  async push(bytes: Uint8Array): Promise<void> {
    while (this.#bytes >= MAX_IN_FLIGHT_BYTES && !this.#signal.aborted) {
      await new Promise<void>((resolve) => this.#room = resolve);
    }
    this.#queue.push({
      bytes: bytes.slice(),
      due: performance.now() + this.#latencyMs,
    });
    this.#bytes += bytes.length;
    this.#wake?.();
  }

  /** No more bytes will come: {@linkcode drain} ends once the line is empty. */
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  /** Hands each piece to `write` when it is due, until the line ends or is aborted. */
  async drain(write: (bytes: Uint8Array) => Promise<void>): Promise<void> {
    while (!this.#signal.aborted) {
      const head = this.#queue[0];
      if (head === undefined) {
        if (this.#ended) return;
        await new Promise<void>((resolve) => this.#wake = resolve);
        continue;
      }
      const wait = head.due - performance.now();
      if (wait > 0) await this.#sleep(wait);
      if (this.#signal.aborted) return;
      this.#queue.shift();
      this.#bytes -= head.bytes.length;
      this.#room?.();
      await write(head.bytes);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#signal.addEventListener("abort", done, { once: true });
    });
  }
}
