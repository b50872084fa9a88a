/**
 * Sends the fuzzer's frames to a live server over many connections and
 * counts what happened: frames out, replies by type, errors by code,
 * connections the server dropped, reset or left hanging.
 *
 * @module
 */

import { ERROR_CODE } from "../../base/errors.ts";
import { type ControlMessage, FrameReader } from "../../protocol.ts";
import { FrameFuzzer, type FuzzConnection } from "./frames.ts";

/** Options for {@linkcode runFuzz}. */
export interface FuzzOptions {
  /** Server host. @default "127.0.0.1" */
  host?: string;
  /** Server port. */
  port: number;
  /** Frames to send, at least: the connections under way finish their sequences. */
  frames: number;
  /** Seed of the generator. */
  seed: number;
  /** Connections open at once. @default 8 */
  concurrency?: number;
  /** Longest one connection may take before it counts as hung. @default 10000 */
  connectionTimeoutMs?: number;
  /** A folder outside the server's, for absolute names to aim at. */
  outside?: string;
}

/** What a fuzz run did. */
export interface FuzzStats {
  /** Frames (and junk pieces) written completely. */
  framesSent: number;
  /** Bytes written. */
  bytesSent: number;
  /** Connections opened. */
  connections: number;
  /**
   * Connections the server dropped: it hung up before the fuzzer had sent
   * everything, reset the connection, or closed right after a fatal `error`.
   */
  closedByServer: number;
  /** Connections that ended with a TCP reset rather than a clean close. */
  resets: number;
  /** Frames the server sent back. */
  framesReceived: number;
  /** Those frames by message type (`data` for chunks). */
  replyTypes: Record<string, number>;
  /** `error` frames the server sent back. */
  errorsReceived: number;
  /** Those errors by code. */
  errorCodes: Record<string, number>;
  /** The first message seen for each code. */
  errorSamples: Record<string, string>;
  /** Connections the server kept open past `connectionTimeoutMs` after the fuzzer was done. */
  hung: number;
  /** Milliseconds the run took. */
  ms: number;
}

/** Error codes after which the server closes the connection. */
const FATAL_CODES = new Set<string>([
  ERROR_CODE.protocol,
  ERROR_CODE.unsupportedVersion,
  ERROR_CODE.internal,
  ERROR_CODE.unauthorized,
]);

/** Most reads of one connection's replies. */
const MAX_REPLY_FRAMES = 10_000_000;

/**
 * Sends fuzz to a server over many connections until `frames` frames are
 * out, reading (and counting) every reply.
 */
export async function runFuzz(options: FuzzOptions): Promise<FuzzStats> {
  const started = performance.now();
  const fuzzer = new FrameFuzzer(options.seed, {
    ...(options.outside === undefined ? {} : { outside: options.outside }),
  });
  const stats: FuzzStats = {
    framesSent: 0,
    bytesSent: 0,
    connections: 0,
    closedByServer: 0,
    resets: 0,
    framesReceived: 0,
    replyTypes: {},
    errorsReceived: 0,
    errorCodes: {},
    errorSamples: {},
    hung: 0,
    ms: 0,
  };
  const worker = async () => {
    while (stats.framesSent < options.frames) {
      const connection = fuzzer.connection();
      stats.connections++;
      await fuzzOne(connection, options, stats);
    }
  };
  await Promise.all(
    Array.from({ length: options.concurrency ?? 8 }, worker),
  );
  stats.ms = Math.round(performance.now() - started);
  return stats;
}

/** Longest a live frame waits for the server to answer the request before it. */
const ANSWER_TIMEOUT_MS = 1000;

/** Answers to requests (offer, ready, error) on one connection, as they come. */
class Replies {
  /** Answers so far. */
  answers = 0;
  /** The transfer the server named last (0 after an error). */
  transferId = 0;
  /** Whether the server's side has ended. */
  ended = false;
  /** Whether the last frame was an error after which the server closes. */
  lastFatal = false;
  /** How the server's side ended. */
  readonly end: Promise<"eof" | "reset" | "closed">;
  #answered = Promise.withResolvers<void>();

  /** Starts reading `conn`, counting into `stats`. */
  constructor(conn: Deno.Conn, stats: FuzzStats) {
    this.end = this.#read(conn, stats);
  }

  async #read(
    conn: Deno.Conn,
    stats: FuzzStats,
  ): Promise<"eof" | "reset" | "closed"> {
    const reader = new FrameReader(conn);
    try {
      for (let i = 0; i < MAX_REPLY_FRAMES; i++) {
        const frame = await reader.next();
        if (frame === null) return "eof";
        stats.framesReceived++;
        const type = frame.kind === "data" ? "data" : frame.message.type;
        stats.replyTypes[type] = (stats.replyTypes[type] ?? 0) + 1;
        this.lastFatal = false;
        if (
          frame.kind === "control" && this.#noteAnswer(frame.message, stats)
        ) {
          this.answers++;
          this.#answered.resolve();
          this.#answered = Promise.withResolvers<void>();
        }
      }
      return "closed";
    } catch (error) {
      return error instanceof Deno.errors.ConnectionReset ? "reset" : "closed";
    } finally {
      this.ended = true;
      this.#answered.resolve();
    }
  }

  /** Notes an offer, ready or error; whether `message` was one. */
  #noteAnswer(message: ControlMessage, stats: FuzzStats): boolean {
    if (message.type === "offer" || message.type === "ready") {
      this.transferId = message.transferId;
    } else if (message.type === "error") {
      this.transferId = 0;
      stats.errorsReceived++;
      stats.errorCodes[message.code] = (stats.errorCodes[message.code] ?? 0) +
        1;
      stats.errorSamples[message.code] ??= message.message;
      this.lastFatal = FATAL_CODES.has(message.code);
    } else {
      return false;
    }
    return true;
  }

  /** Waits, {@linkcode ANSWER_TIMEOUT_MS} at most, for more than `after` answers. */
  async awaitAnswer(after: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ANSWER_TIMEOUT_MS);
    });
    const deadline = performance.now() + ANSWER_TIMEOUT_MS;
    try {
      while (
        this.answers <= after && !this.ended && performance.now() < deadline
      ) {
        await Promise.race([this.#answered.promise, timeout]);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * Writes a connection's frames, building each live one from the server's
 * last answer; false when the server's side ended first or a write failed.
 */
async function sendFrames(
  conn: Deno.Conn,
  connection: FuzzConnection,
  replies: Replies,
  stats: FuzzStats,
): Promise<boolean> {
  let answersBeforeRequest = 0;
  try {
    for (const item of connection.frames) {
      if (replies.ended) return false;
      let frame: Uint8Array;
      if (item instanceof Uint8Array) {
        answersBeforeRequest = replies.answers;
        frame = item;
      } else {
        if (item.fresh) await replies.awaitAnswer(answersBeforeRequest);
        if (replies.ended) return false;
        frame = item.build(replies.transferId);
      }
      let written = 0;
      while (written < frame.length) {
        written += await conn.write(frame.subarray(written));
      }
      stats.framesSent++;
      stats.bytesSent += frame.length;
    }
    if (!replies.ended) await conn.closeWrite();
    return true;
  } catch {
    return false;
  }
}

/** One connection: its frames out, the replies read, the ending counted. */
async function fuzzOne(
  connection: FuzzConnection,
  options: FuzzOptions,
  stats: FuzzStats,
): Promise<void> {
  const conn = await Deno.connect({
    hostname: options.host ?? "127.0.0.1",
    port: options.port,
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, options.connectionTimeoutMs ?? 10_000);
  const replies = new Replies(conn, stats);
  const sentAll = await sendFrames(conn, connection, replies, stats);
  const end = await replies.end;
  clearTimeout(timer);
  if (timedOut) stats.hung++;
  else conn.close();
  if (!timedOut && (!sentAll || replies.lastFatal || end === "reset")) {
    stats.closedByServer++;
  }
  if (end === "reset") stats.resets++;
}
