/**
 * A request body streamed into an upload (`Store.receive`): bytes arrive at
 * any offset and in any pieces; whole chunks are accepted (written, marked
 * and hashed into the file's digest), and a last partial chunk is written
 * to the part file as the store's tail, so the next request (or a
 * restarted server) reads it back and completes that chunk. Two chunk
 * buffers alternate: one fills from the socket while the other is written.
 *
 * @module
 */

import { noteYoungGarbage } from "../../base/gc.ts";

/** Bytes of a body read at a time into the one staging buffer. */
const STAGING_BYTES = 256 * 1024;

/** Pieces of a body, each valid until the next read. */
interface PieceReader {
  read(): Promise<Uint8Array | null>;
  cancel(): Promise<void>;
}

/**
 * Reads `body` into one reused staging buffer when it is a byte stream
 * (no buffer per piece to collect; the pieces are copied out at once, so a
 * read that fails loses nothing), else piece by piece.
 */
function pieceReader(body: ReadableStream<Uint8Array>): PieceReader {
  let byob: ReadableStreamBYOBReader | undefined;
  try {
    byob = body.getReader({ mode: "byob" });
  } catch {
    const reader = body.getReader();
    return {
      async read() {
        const { done, value } = await reader.read();
        if (done) return null;
        noteYoungGarbage(value.length);
        return value;
      },
      cancel: () => reader.cancel(),
    };
  }
  let staging = new Uint8Array(STAGING_BYTES);
  return {
    async read() {
      const { done, value } = await byob.read(staging);
      if (done || value === undefined) return null;
      staging = new Uint8Array(value.buffer as ArrayBuffer);
      return value;
    },
    cancel: () => byob.cancel(),
  };
}
import type { Upload } from "../../store.ts";
import { chunkLength } from "../../engine/chunks.ts";

/** How a body ended. */
export type BodyEnd =
  /** The stream ended; every byte was taken. */
  | "complete"
  /** The connection broke or the server stopped: what arrived was kept. */
  | "cut"
  /** It went silent for the idle timeout: what arrived was kept. */
  | "idle"
  /** It held more bytes than the upload has room for: the rest were refused. */
  | "too_long";

/** Options for {@linkcode writeBody}. */
export interface WriteBodyOptions {
  /** A body silent this long is given up. */
  idleTimeoutMs: number;
  /** Aborted when the server stops. */
  signal: AbortSignal;
  /** Told of every piece of the body as it arrives (a per-request checksum). */
  onBytes?: (bytes: Uint8Array) => void;
  /**
   * Checkpoint the upload after every this many bytes accepted, so a crash
   * in a long body (a browser sends a whole file in one) loses at most
   * that much. Never when undefined.
   */
  checkpointEvery?: number;
}

/**
 * Appends `body` to `store` from the bytes it holds (`heldBytes`), up to
 * the file's end. Resolves with the bytes taken and how the body ended;
 * a failure to write (a full disk) rejects.
 */
export async function writeBody(
  store: Upload,
  body: ReadableStream<Uint8Array> | null,
  options: WriteBodyOptions,
): Promise<{ bytes: number; end: BodyEnd }> {
  const { chunkSize, size } = store.manifest;
  const start = store.heldBytes;
  // An upload holding every byte has no tail and no room: any byte of the
  // body is one too many.
  const whole = start >= size;
  let seq = whole ? store.count : Math.floor(start / chunkSize);
  const buffers = [0, 1].map(() =>
    new Uint8Array(Math.min(chunkSize, Math.max(size, 1)))
  );
  const pending: (Promise<void> | undefined)[] = [undefined, undefined];
  let current = 0;
  let fill = whole ? 0 : start - seq * chunkSize;
  if (fill > 0 && await store.readTail(buffers[0]!) !== fill) {
    throw new Error(
      `Cannot resume ${store.label}: its tail was not read back`,
    );
  }
  let bytes = 0;
  let sinceCheckpoint = 0;
  let end: BodyEnd = "complete";
  const reader = body ? pieceReader(body) : undefined;
  const watch = watchdog(reader, options);
  try {
    reading: while (reader) {
      let piece: Uint8Array | null;
      try {
        piece = await reader.read();
      } catch {
        end = "cut"; // The connection broke, or the watchdog cancelled it.
        break;
      }
      watch.touch();
      if (piece === null) break;
      options.onBytes?.(piece);
      for (let at = 0; at < piece.length;) {
        const room = seq < store.count ? chunkLength(seq, size, chunkSize) : 0;
        if (room === 0) {
          end = "too_long";
          break reading;
        }
        const taken = Math.min(room - fill, piece.length - at);
        buffers[current]!.set(piece.subarray(at, at + taken), fill);
        at += taken;
        fill += taken;
        bytes += taken;
        if (fill < room) continue;
        pending[current] = store.accept(
          seq++,
          buffers[current]!.subarray(0, room),
        );
        fill = 0;
        current ^= 1;
        await pending[current];
        sinceCheckpoint += room;
        if (sinceCheckpoint >= (options.checkpointEvery ?? Infinity)) {
          await Promise.all(pending);
          await store.checkpoint();
          sinceCheckpoint = 0;
        }
      }
    }
  } finally {
    watch.stop();
    reader?.cancel().catch(() => undefined);
    await Promise.allSettled(pending);
  }
  if (watch.idle) end = "idle";
  else if (options.signal.aborted && end === "complete") end = "cut";
  await Promise.all(pending);
  if (fill > 0) await store.writeTail(buffers[current]!.subarray(0, fill));
  return { bytes, end };
}

/**
 * Cancels `reader` when it goes silent for the idle timeout or the server
 * stops; `touch` on every read.
 */
function watchdog(
  reader: PieceReader | undefined,
  options: WriteBodyOptions,
): { touch(): void; stop(): void; readonly idle: boolean } {
  let last = performance.now();
  let idle = false;
  const cancel = () => reader?.cancel().catch(() => undefined);
  const timer = setInterval(() => {
    if (performance.now() - last < options.idleTimeoutMs) return;
    idle = true;
    cancel();
  }, Math.max(50, Math.min(1000, options.idleTimeoutMs / 4)));
  options.signal.addEventListener("abort", cancel);
  return {
    touch: () => last = performance.now(),
    stop() {
      clearInterval(timer);
      options.signal.removeEventListener("abort", cancel);
    },
    get idle() {
      return idle;
    },
  };
}
