/**
 * A framed ftv connection over a `Deno.Conn`: reads frames with an idle
 * timeout, writes whole frames, and turns socket failures into one error
 * type that says what happened.
 *
 * @module
 */

import {
  ConnectionError,
  type ErrorCode,
  ProtocolError,
  RemoteError,
} from "../base/errors.ts";
import {
  BufferPool,
  type ControlMessage,
  type ControlOf,
  type ControlType,
  encodeControl,
  type Frame,
  FrameReader,
} from "../protocol.ts";

/** Options for {@linkcode FramedConnection}. */
export interface FramedConnectionOptions {
  /** Milliseconds a read may wait for the peer; 0 waits forever. @default 0 */
  idleTimeoutMs?: number;
}

/** Options for {@linkcode FramedConnection.next}. */
export interface NextOptions {
  /** Give up after {@linkcode FramedConnection.idleTimeoutMs} without data. @default true */
  idleTimeout?: boolean;
}

/** Frames over one socket. */
export class FramedConnection {
  readonly conn: Deno.Conn;
  #reader: FrameReader;
  /** Milliseconds a read may wait for the peer; 0 waits forever. */
  idleTimeoutMs: number;
  #closed = false;
  #bytesSent = 0;
  #queued: Uint8Array[] = [];
  #queuedBytes = 0;
  /** Where large received frame bodies come from; give payloads back when done. */
  readonly pool: BufferPool = new BufferPool();
  #bytesReceived = 0;

  /** Wraps an open connection. */
  constructor(conn: Deno.Conn, options: FramedConnectionOptions = {}) {
    this.conn = conn;
    this.#reader = new FrameReader(
      {
        read: async (p) => {
          let got: number | null;
          try {
            got = await conn.read(p);
          } catch (error) {
            // A TLS peer that closes without close_notify: an end of stream
            // like any other; a frame cut short is still caught by the reader.
            if (error instanceof Deno.errors.UnexpectedEof) return null;
            throw error;
          }
          if (got !== null) this.#bytesReceived += got;
          return got;
        },
      },
      undefined,
      this.pool,
    );
    this.idleTimeoutMs = options.idleTimeoutMs ?? 0;
    try {
      // Frames are written whole; Nagle would only delay small ones.
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch {
      // Not a TCP connection (or already closed): nothing to tune.
    }
  }

  /** Bytes written to the socket so far. */
  get bytesSent(): number {
    return this.#bytesSent;
  }

  /** Bytes read from the socket so far. */
  get bytesReceived(): number {
    return this.#bytesReceived;
  }

  /** The peer's address as `host:port`. */
  get peer(): string {
    const addr = this.conn.remoteAddr as Deno.NetAddr;
    return `${addr.hostname}:${addr.port}`;
  }

  /**
   * A copy of up to `max` bytes received but not yet decoded: after a
   * refused frame header, what the peer sent in its place.
   */
  peekBuffered(max: number): Uint8Array {
    return this.#reader.peek(max);
  }

  /** Whether a whole frame is already buffered, so {@linkcode next} needs no I/O. */
  get hasBufferedFrame(): boolean {
    return this.#reader.hasFrame;
  }

  /**
   * Next frame, or `null` when the peer closed cleanly between frames. With
   * `idleTimeout: false` the read may wait forever: for a peer that speaks
   * only when something goes wrong (see {@linkcode withIdleTimeout}).
   */
  next(options: NextOptions = {}): Promise<Frame | null> {
    // A frame already buffered needs no timer: arming one per frame costs more than the frame.
    const timed = options.idleTimeout !== false && !this.#reader.hasFrame;
    const read = this.#reader.next();
    return timed ? this.withIdleTimeout(read) : this.#translated(read);
  }

  /**
   * Awaits `read`, a read of this connection (perhaps started earlier
   * without the idle timeout), closing the connection if the peer sends
   * nothing for {@linkcode idleTimeoutMs}.
   */
  async withIdleTimeout<T>(read: Promise<T>): Promise<T> {
    if (this.idleTimeoutMs <= 0) return await this.#translated(read);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.close();
    }, this.idleTimeoutMs);
    try {
      return await read;
    } catch (error) {
      if (timedOut) {
        throw new ConnectionError(
          `Cannot read from ${this.peer}: no data for ${this.idleTimeoutMs} ms`,
        );
      }
      throw translate(error, `read from ${this.#peerSafe()}`);
    } finally {
      clearTimeout(timer);
    }
  }

  async #translated<T>(read: Promise<T>): Promise<T> {
    try {
      return await read;
    } catch (error) {
      throw translate(error, `read from ${this.#peerSafe()}`);
    }
  }

  /** Next control message; data frames arriving here are a protocol error. */
  async nextControl(options: NextOptions = {}): Promise<ControlMessage> {
    const frame = await this.next(options);
    if (frame === null) {
      throw new ConnectionError(
        `Cannot read from ${this.#peerSafe()}: connection closed by peer`,
      );
    }
    if (frame.kind !== "control") {
      throw new ProtocolError(
        "Cannot continue: expected a control message, got a data frame",
      );
    }
    return frame.message;
  }

  /** Next control message of `type`; an `error` message is thrown as {@linkcode RemoteError}. */
  async expect<T extends ControlType>(type: T): Promise<ControlOf<T>> {
    const message = await this.nextControl();
    if (message.type === type) return message as ControlOf<T>;
    if (message.type === "error") {
      throw new RemoteError(message.code, message.message);
    }
    throw new ProtocolError(
      `Cannot continue: expected "${type}", got "${message.type}"`,
    );
  }

  /**
   * Writes a whole frame. A peer that takes no bytes for the idle timeout
   * (it stopped reading) fails the write, as a silent one fails a read.
   */
  async write(frame: Uint8Array): Promise<void> {
    if (this.#queued.length > 0) await this.flush();
    await this.#writeNow(frame);
  }

  /**
   * Queues a control message to go out with the next write or
   * {@linkcode flush}, so many small replies take one socket write; order
   * is kept (a later write sends the queue first).
   */
  queue(message: ControlMessage): void {
    this.queueFrame(encodeControl(message));
  }

  /** Queues an encoded frame, like {@linkcode queue}. */
  queueFrame(frame: Uint8Array): void {
    this.#queued.push(frame);
    this.#queuedBytes += frame.length;
  }

  /** Frames queued and not yet written. */
  get queued(): number {
    return this.#queued.length;
  }

  /** Bytes queued and not yet written. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Writes what {@linkcode queue} holds, in one write. */
  async flush(): Promise<void> {
    if (this.#queued.length === 0) return;
    const bytes = new Uint8Array(this.#queuedBytes);
    let at = 0;
    for (const frame of this.#queued) {
      bytes.set(frame, at);
      at += frame.length;
    }
    this.#queued = [];
    this.#queuedBytes = 0;
    await this.#writeNow(bytes);
  }

  async #writeNow(frame: Uint8Array): Promise<void> {
    // One timer per frame, not per partial write (a TLS write takes 64 KiB
    // at a time): it re-arms itself while the writes make progress.
    let timer: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    let progressAt = performance.now();
    const arm = (ms: number) => {
      timer = setTimeout(() => {
        const idle = performance.now() - progressAt;
        if (idle < this.idleTimeoutMs) return arm(this.idleTimeoutMs - idle);
        timedOut = true;
        this.close();
      }, ms);
    };
    try {
      if (this.idleTimeoutMs > 0) arm(this.idleTimeoutMs);
      let written = 0;
      while (written < frame.length) {
        written += await this.conn.write(frame.subarray(written));
        progressAt = performance.now();
      }
      this.#bytesSent += written;
    } catch (error) {
      if (timedOut) {
        throw new ConnectionError(
          `Cannot write to ${this.#peerSafe()}: no progress for ${this.idleTimeoutMs} ms`,
        );
      }
      throw translate(error, `write to ${this.#peerSafe()}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes one control message. */
  send(message: ControlMessage): Promise<void> {
    return this.write(encodeControl(message));
  }

  /** Sends an `error` frame, ignoring a peer that is already gone. */
  async sendError(code: ErrorCode, message: string): Promise<void> {
    try {
      await this.send({ type: "error", code, message });
    } catch {
      // The peer left; there is nobody to tell.
    }
  }

  /**
   * Ends the connection politely after telling the peer why: stops writing
   * (so the peer reads everything sent, an `error` frame included, then an
   * end of stream) and discards what the peer still sends, up to
   * `maxBytes` or until it is silent for the idle timeout, before closing.
   * Closing at once with unread input would reset the connection, and a
   * reset can destroy the peer's copy of that last frame.
   */
  async drainAndClose(maxBytes = 64 * 1024 * 1024): Promise<void> {
    try {
      await this.flush();
      await (this.conn as Deno.TcpConn).closeWrite?.();
      const sink = new Uint8Array(256 * 1024);
      for (let drained = 0; drained < maxBytes;) {
        const got = await this.withIdleTimeout(this.conn.read(sink));
        if (got === null) break;
        drained += got;
      }
    } catch {
      // The peer left or went silent: closing is all that is left.
    } finally {
      this.close();
    }
  }

  /** Closes the socket once; later calls do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Already closed by the runtime.
    }
  }

  /** Closes the connection (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }

  #peerSafe(): string {
    try {
      return this.peer;
    } catch {
      return "peer";
    }
  }
}

/** Turns runtime socket errors into {@linkcode ConnectionError}; protocol errors pass through. */
export function translate(error: unknown, action: string): Error {
  if (error instanceof ProtocolError || error instanceof ConnectionError) {
    return error;
  }
  if (
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.UnexpectedEof ||
    error instanceof Deno.errors.NotConnected
  ) {
    return new ConnectionError(
      `Cannot ${action}: connection lost (${error.name})`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}
