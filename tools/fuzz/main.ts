/**
 * A seeded protocol fuzzer for the ftv server. {@linkcode FrameFuzzer} makes
 * one connection's worth of frames at a time: valid frames, valid frames
 * damaged (flipped bits, cut short, wrong length prefix, wrong kind, bad
 * CRC), random JSON, valid-shaped messages in the wrong order, data frames
 * for transfers that do not exist, `nack`s naming a chunk thousands of
 * times, hellos with odd versions, names that try to leave the server's
 * folder, and plain junk. {@linkcode runFuzz} sends them to a live server
 * over many connections and counts what happened.
 *
 * Run it: `deno task fuzz --frames 10000 --seed 7`. It starts a server in
 * this process, fuzzes it, then checks that a well-behaved client still
 * gets a file through verified and that nothing was written outside the
 * server's folder.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { parseArgs } from "node:util";
import { FtvClient } from "../../client.ts";
import { hashFile } from "../../engine/digest.ts";
import { Logger } from "../../base/log.ts";
import {
  MAX_NAME_BYTES,
  META_DIR,
  nameRefusal,
  PART_SUFFIX,
  STATE_SUFFIX,
} from "../../protocol/names.ts";
import {
  type ControlMessage,
  encodeControl,
  encodeData,
  FRAME_KIND,
  FRAME_PREFIX_BYTES,
  FrameReader,
  MAX_CHUNK_BYTES,
  MAX_CONTROL_BYTES,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
} from "../../protocol.ts";
import { Rng } from "../../faults/rng.ts";
import { serve } from "../../server.ts";
import { ERROR_CODE } from "../../base/errors.ts";

/**
 * Names a server must refuse with `bad_name`: each would leave the folder,
 * hide a control character, collide on disk or clash with ftv's own files.
 * {@linkcode hostileNames} adds absolute paths into a folder of your choice.
 */
export const HOSTILE_NAMES: readonly string[] = [
  "",
  ".",
  "..",
  "../evil",
  "../../evil",
  "../../../../../../../../etc/passwd",
  "/etc/passwd",
  "/",
  "//",
  "./evil",
  "evil/",
  "a//b",
  "a/./b",
  "a/b/..",
  "x/.ftv",
  "a/../../evil",
  "a\\b",
  "..\\evil",
  "..\\..\\windows\\win.ini",
  "\\\\server\\share\\evil",
  "C:evil",
  "C:\\evil",
  "c:/evil",
  "a\u0000b",
  "\u0000",
  "evil\n",
  "evil\r",
  "\u001b[2Jevil",
  "evil\u007f",
  "evil\u0085",
  "\ud800",
  "x\udfffy",
  ".ftv",
  "x.ftv-part",
  "x.ftv-state",
  ".ftv-part",
  "x.ftv-state.tmp",
  "x".repeat(MAX_NAME_BYTES + 1),
  "é".repeat(Math.ceil((MAX_NAME_BYTES + 1) / 2)),
];

/** {@linkcode HOSTILE_NAMES} plus absolute paths into `outside`. */
export function hostileNames(outside?: string): string[] {
  if (outside === undefined) return [...HOSTILE_NAMES];
  return [
    ...HOSTILE_NAMES,
    `${outside}/pwned`,
    `${outside}/../pwned`,
    `${outside}\\pwned`,
  ];
}

/** Legal but awkward names: stored inside the folder like any other. */
const ODD_NAMES = [
  "seed.bin",
  "a.bin",
  "__proto__",
  "constructor",
  " ",
  "-rf",
  "~",
  "..evil",
  "evil..",
  "%2e%2e%2fevil",
  "é",
  "x".repeat(MAX_NAME_BYTES),
];

/** SHA-256 of nothing: a `done` with it finishes an empty upload. */
const EMPTY_SHA256 =
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * A frame made only once the server has named the transfer (in its `offer`
 * or `ready`), so chunks, `done`s and `nack`s reach a real transfer.
 */
export interface LiveFrame {
  /** Wait for the server's answer to the request just sent before building. */
  fresh: boolean;
  /** The frame for `transferId` (0 when the server named none). */
  build(transferId: number): Uint8Array;
}

/** A frame to send as is, or one built from the server's answer. */
export type FuzzFrame = Uint8Array | LiveFrame;

/** One connection's worth of fuzz. */
export interface FuzzConnection {
  /** What kind of sequence this is, for reports. */
  label: string;
  /** Frames (or junk) to send, in order. */
  frames: FuzzFrame[];
}

/** Options for {@linkcode FrameFuzzer}. */
export interface FrameFuzzerOptions {
  /** A folder outside the server's: absolute names aim into it. */
  outside?: string;
  /** Chance that a frame of a sequence is damaged. @default 0.15 */
  mutateRate?: number;
}

const encoder = new TextEncoder();

/** A control frame around any body, with a correct CRC (for bodies `encodeControl` cannot make). */
function rawControl(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_PREFIX_BYTES + 4 + body.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 1 + 4 + body.length);
  frame[4] = FRAME_KIND.control;
  view.setUint32(5, crc32(body));
  frame.set(body, 9);
  return frame;
}

/** A control frame of any JSON value, shaped right or not. */
function jsonFrame(value: unknown): Uint8Array {
  return rawControl(encoder.encode(JSON.stringify(value) ?? "null"));
}

/** `frame` damaged one way, drawn from `rng`. */
export function mutateFrame(frame: Uint8Array, rng: Rng): Uint8Array {
  const out = frame.slice();
  const view = new DataView(out.buffer);
  const pick = <T>(items: readonly T[]): T => items[rng.int(items.length)]!;
  switch (rng.int(6)) {
    case 0: { // flipped bits
      const flips = 1 + rng.int(8);
      for (let i = 0; i < flips && out.length > 0; i++) {
        out[rng.int(out.length)]! ^= 1 << rng.int(8);
      }
      return out;
    }
    case 1: // cut short
      return out.subarray(0, rng.int(out.length));
    case 2: // a length prefix that lies
      if (out.length >= 4) {
        view.setUint32(
          0,
          pick([
            0,
            1,
            6,
            Math.max(0, out.length - 4 - 1 - rng.int(8)),
            out.length - 4 + 1 + rng.int(1000),
            rng.int(2 ** 32),
          ]),
        );
      }
      return out;
    case 3: // an unknown or swapped kind
      if (out.length > 4) {
        out[4] = pick([0, 3, 255, FRAME_KIND.data, FRAME_KIND.control]);
      }
      return out;
    case 4: // a CRC that does not match
      if (out.length > 8) out[5]! ^= 0xff;
      return out;
    default: { // junk glued on
      const glued = new Uint8Array(out.length + 1 + rng.int(32));
      glued.set(out);
      for (let i = out.length; i < glued.length; i++) glued[i] = rng.int(256);
      return glued;
    }
  }
}

/** Generates hostile frame sequences, reproducibly from a seed. */
export class FrameFuzzer {
  readonly seed: number;
  #rng: Rng;
  #names: string[];
  #mutateRate: number;
  /** Requests made so far: the server numbers transfers about this high. */
  #requests = 0;

  /** A fuzzer drawing from `seed`. */
  constructor(seed: number, options: FrameFuzzerOptions = {}) {
    this.seed = seed;
    this.#rng = new Rng(seed);
    this.#names = [...hostileNames(options.outside), ...ODD_NAMES];
    this.#mutateRate = options.mutateRate ?? 0.15;
  }

  /** The next connection's frames. */
  connection(): FuzzConnection {
    const shapes: [string, () => FuzzFrame[]][] = [
      ["random after hello", () => [this.#hello(), ...this.#many(this.#any)]],
      ["random without hello", () => this.#many(this.#any)],
      ["upload", () => this.#upload()],
      ["download", () => this.#download()],
      ["wrong order", () => [this.#hello(), ...this.#many(this.#misplaced)]],
      ["odd hello", () => [this.#oddHello(), ...this.#many(this.#any, 3)]],
      ["hostile names", () => [this.#hello(), ...this.#many(this.#request)]],
      ["oversized", () => [...this.#maybeHello(), this.#oversized()]],
    ];
    const [label, make] = this.#pick(shapes);
    const frames = make().map((frame): FuzzFrame => {
      if (!this.#rng.chance(this.#mutateRate)) return frame;
      if (frame instanceof Uint8Array) return mutateFrame(frame, this.#rng);
      // Drawn now, so the sequence depends on the seed alone.
      const rng = new Rng(this.#rng.int(2 ** 32));
      return {
        fresh: frame.fresh,
        build: (id) => mutateFrame(frame.build(id), rng),
      };
    });
    return { label, frames };
  }

  /** A frame of any kind, valid or not. */
  #any = (): Uint8Array => {
    const roll = this.#rng.next();
    if (roll < 0.2) return this.#request();
    if (roll < 0.35) return this.#misplaced();
    if (roll < 0.5) return this.#data(this.#guessId());
    if (roll < 0.6) return jsonFrame(this.#json(3));
    if (roll < 0.65) return this.#badUtf8();
    if (roll < 0.72) return this.#oddHello();
    if (roll < 0.74) return this.#hugeNack();
    if (roll < 0.76) return this.#oversized();
    if (roll < 0.9) return mutateFrame(this.#request(), this.#rng);
    return this.#junk();
  };

  #many(make: () => Uint8Array, max = 12): Uint8Array[] {
    return Array.from({ length: 1 + this.#rng.int(max) }, () => make());
  }

  #hello(): Uint8Array {
    return encodeControl({
      type: "hello",
      version: PROTOCOL_VERSION,
      agent: this.#string(),
      ...(this.#rng.chance(0.3) ? { chunkSize: this.#size() } : {}),
    });
  }

  #maybeHello(): Uint8Array[] {
    return this.#rng.chance(0.5) ? [this.#hello()] : [];
  }

  #oddHello(): Uint8Array {
    const version = this.#pick<unknown>([
      0,
      2,
      99,
      2 ** 32,
      Number.MAX_SAFE_INTEGER,
      -1,
      1.5,
      "1",
      null,
      true,
      [1],
      {},
    ]);
    return jsonFrame({ type: "hello", version, agent: this.#string() });
  }

  /** A well-formed request a client may send, often with a hostile name. */
  #request = (): Uint8Array => {
    this.#requests++;
    const name = this.#pick(this.#names);
    if (this.#rng.chance(0.6)) {
      return encodeControl({
        type: "put",
        name,
        size: this.#size(),
        chunkSize: this.#pick([0, 1, 511, 512, 1024, MAX_CHUNK_BYTES, 2 ** 31]),
        mtimeMs: this.#rng.int(2 ** 31) - 2 ** 30,
        maxRetries: this.#pick([0, 1, 3, 1000, 2 ** 31]),
      });
    }
    if (this.#rng.chance(0.8)) {
      return encodeControl({ type: "get", name, eager: this.#rng.chance(0.3) });
    }
    return encodeControl({ type: "list" });
  };

  /** A valid-shaped message this side should never send now. */
  #misplaced = (): Uint8Array => {
    const transferId = this.#guessId();
    const messages: ControlMessage[] = [
      { type: "hello", version: PROTOCOL_VERSION, agent: "again" },
      { type: "auth", proof: this.#hex(64) },
      { type: "authorized" },
      {
        type: "offer",
        transferId,
        name: this.#pick(this.#names),
        size: this.#size(),
        chunkSize: 1024,
        sha256: this.#hex(64),
        mtimeMs: 0,
      },
      {
        type: "ready",
        transferId,
        have: this.#base64(this.#rng.int(16)),
        ...(this.#rng.chance(0.3) ? { verifyPart: true } : {}),
      },
      { type: "sums", transferId, crc32: this.#base64(this.#rng.int(64)) },
      {
        type: "done",
        transferId,
        sha256: this.#rng.chance(0.5) ? EMPTY_SHA256 : this.#hex(64),
      },
      {
        type: "nack",
        transferId,
        seqs: Array.from({ length: this.#rng.int(8) }, () => this.#rng.int(8)),
        round: this.#rng.int(200),
      },
      { type: "verified", transferId, sha256: this.#hex(64), bytes: 0 },
      { type: "listing", files: [] },
      {
        type: "error",
        code: this.#pick(Object.values(ERROR_CODE)),
        message: this.#string(),
      },
    ];
    return encodeControl(this.#pick(messages));
  };

  /**
   * A put, its chunks (sometimes reordered, lost or out of range) for the
   * transfer the server names, and a `done` whose digest is often right.
   */
  #upload(): FuzzFrame[] {
    this.#requests++;
    const size = this.#pick([0, 0, 1, 700, 1024, 3000]);
    const chunkSize = this.#pick([512, 1024]);
    const name = this.#rng.chance(0.8)
      ? `up-${this.#rng.int(20)}`
      : this.#pick(this.#names);
    const count = Math.ceil(size / chunkSize);
    const chunks = Array.from(
      { length: count },
      (_, seq) => this.#bytes(Math.min(chunkSize, size - seq * chunkSize)),
    );
    const hash = createHash("sha256");
    for (const chunk of chunks) hash.update(chunk);
    const sha256 = this.#rng.chance(0.7) ? hash.digest("hex") : this.#hex(64);
    const seqs = chunks.map((_, seq) => seq);
    if (this.#rng.chance(0.3)) this.#rng.shuffle(seqs);
    if (seqs.length > 0 && this.#rng.chance(0.2)) seqs.pop();
    if (this.#rng.chance(0.1)) seqs.push(count + this.#rng.int(3));
    const sendChunks = (first: boolean) =>
      seqs.map((seq, i): LiveFrame => ({
        fresh: first && i === 0,
        build: (id) => encodeData(id, seq, chunks[seq] ?? this.#bytes(1)),
      }));
    const done = (fresh: boolean): LiveFrame => ({
      fresh,
      build: (id) => encodeControl({ type: "done", transferId: id, sha256 }),
    });
    const frames: FuzzFrame[] = [
      this.#hello(),
      encodeControl({
        type: "put",
        name,
        size,
        chunkSize,
        mtimeMs: 0,
        maxRetries: this.#rng.int(5),
      }),
      ...sendChunks(true),
      done(seqs.length === 0),
    ];
    // Answer a nack the blunt way: every chunk again, then done again.
    if (this.#rng.chance(0.3)) frames.push(...sendChunks(false), done(false));
    if (this.#rng.chance(0.3)) frames.push(...this.#many(this.#any, 4));
    return frames;
  }

  /** A get, then the receiver's side of the exchange, twisted. */
  #download(): FuzzFrame[] {
    this.#requests++;
    const have = this.#pick(["", "AA==", "AA==", "/w==", this.#base64(4)]);
    const verifyPart = this.#rng.chance(0.2);
    const frames: FuzzFrame[] = [
      this.#hello(),
      encodeControl({
        type: "get",
        name: this.#rng.chance(0.8) ? "seed.bin" : this.#pick(this.#names),
      }),
      {
        fresh: true,
        build: (id) =>
          encodeControl({
            type: "ready",
            transferId: id,
            have,
            ...(verifyPart ? { verifyPart } : {}),
          }),
      },
    ];
    const steps = 1 + this.#rng.int(4);
    for (let i = 0; i < steps; i++) {
      const seqs = this.#pick([
        [0],
        [0, 1, 4],
        [4, 3, 2, 1, 0],
        [0, 0],
        [5],
        [],
        Array.from({ length: 1000 + this.#rng.int(50_000) }, () => 0),
      ]);
      const round = this.#pick([1, 2, 3, 8, 1000]);
      const sha256 = this.#hex(64);
      const bytes = this.#rng.int(6000);
      const type = this.#pick(["nack", "nack", "verified", "done", "ready"]);
      frames.push({
        fresh: false,
        build: (transferId) =>
          encodeControl(
            type === "nack"
              ? { type, transferId, seqs, round }
              : type === "verified"
              ? { type, transferId, sha256, bytes }
              : type === "done"
              ? { type, transferId, sha256 }
              : { type: "ready", transferId, have },
          ),
      });
    }
    return frames;
  }

  /** A nack naming thousands of chunks, most of them many times over. */
  #hugeNack(transferId = this.#guessId()): Uint8Array {
    const length = 1000 + this.#rng.int(100_000);
    const spread = this.#pick([1, 3, 4096, 2 ** 32]);
    return encodeControl({
      type: "nack",
      transferId,
      seqs: Array.from({ length }, () => this.#rng.int(spread)),
      round: this.#rng.int(1000),
    });
  }

  #data(transferId: number): Uint8Array {
    const frame = encodeData(
      transferId,
      this.#pick([0, 1, 2, this.#rng.int(2 ** 32)]),
      this.#bytes(this.#pick([0, 1, 512, 1024, this.#rng.int(70_000)])),
      this.#rng.chance(0.1) ? this.#rng.int(256) : 0,
    );
    if (this.#rng.chance(0.2)) frame[frame.length - 1]! ^= 0x01;
    return frame;
  }

  /** A frame header whose length is over the cap, with a little body. */
  #oversized(): Uint8Array {
    const data = this.#rng.chance(0.5);
    const length = this.#pick(
      data
        ? [MAX_FRAME_BYTES + 1, 2 ** 31, 0xffffffff]
        : [1 + 4 + MAX_CONTROL_BYTES + 1, 2 ** 31, 0xffffffff],
    );
    const frame = new Uint8Array(FRAME_PREFIX_BYTES + this.#rng.int(64));
    new DataView(frame.buffer).setUint32(0, length);
    frame[4] = data ? FRAME_KIND.data : FRAME_KIND.control;
    return frame;
  }

  #badUtf8(): Uint8Array {
    return rawControl(Uint8Array.of(0x7b, 0xff, 0xfe, 0xc0, 0x80, 0x7d));
  }

  #junk(): Uint8Array {
    return this.#bytes(1 + this.#rng.int(300));
  }

  #json(depth: number): unknown {
    const roll = this.#rng.int(depth > 0 ? 9 : 6);
    switch (roll) {
      case 0:
        return null;
      case 1:
        return this.#rng.chance(0.5);
      case 2:
        return this.#pick([0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308]);
      case 3:
        return this.#string();
      case 4:
        return this.#pick(this.#names);
      case 5: // a real type with fields of the wrong kind
        return {
          type: this.#pick(["put", "get", "nack", "ready", "hello", "list"]),
          name: this.#json(0),
          size: this.#json(0),
          seqs: this.#json(0),
          transferId: this.#json(0),
        };
      case 6:
        return Array.from(
          { length: this.#rng.int(5) },
          () => this.#json(depth - 1),
        );
      default: // fromEntries makes "__proto__" a plain key, as JSON.parse does
        return Object.fromEntries(
          Array.from({ length: this.#rng.int(5) }, () => [
            this.#pick(["type", "name", "__proto__", this.#string()]),
            this.#json(depth - 1),
          ]),
        );
    }
  }

  #guessId(): number {
    if (this.#rng.chance(0.1)) {
      return this.#pick([0, 2 ** 31, 0xffffffff]);
    }
    return Math.max(0, this.#requests - 10 + this.#rng.int(14));
  }

  #size(): number {
    return this.#pick([
      0,
      1,
      511,
      1024,
      3000,
      1 << 20,
      2 ** 40,
      Number.MAX_SAFE_INTEGER,
    ]);
  }

  #string(): string {
    const alphabet = "abc./\\\u0000\u00e9\ud83d\ude80\"'{}%";
    return Array.from(
      { length: this.#rng.int(24) },
      () => alphabet[this.#rng.int(alphabet.length)],
    ).join("");
  }

  #hex(length: number): string {
    return Array.from({ length }, () => this.#rng.int(16).toString(16)).join(
      "",
    );
  }

  #base64(bytes: number): string {
    return btoa(String.fromCharCode(...this.#bytes(bytes)));
  }

  #bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.#rng.int(256);
    return out;
  }

  #pick<T>(items: readonly T[]): T {
    return items[this.#rng.int(items.length)]!;
  }
}

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
  let ended = false;
  let lastFatal = false;
  // Answers to requests (offer, ready, error) so far, and the transfer named last.
  let answers = 0;
  let transferId = 0;
  let answered = Promise.withResolvers<void>();
  const replies = (async (): Promise<"eof" | "reset" | "closed"> => {
    const reader = new FrameReader(conn);
    try {
      for (let i = 0; i < MAX_REPLY_FRAMES; i++) {
        const frame = await reader.next();
        if (frame === null) return "eof";
        stats.framesReceived++;
        const type = frame.kind === "data" ? "data" : frame.message.type;
        stats.replyTypes[type] = (stats.replyTypes[type] ?? 0) + 1;
        lastFatal = false;
        if (frame.kind === "data") continue;
        const message = frame.message;
        if (message.type === "offer" || message.type === "ready") {
          transferId = message.transferId;
        } else if (message.type === "error") {
          transferId = 0;
          stats.errorsReceived++;
          stats.errorCodes[message.code] =
            (stats.errorCodes[message.code] ?? 0) + 1;
          stats.errorSamples[message.code] ??= message.message;
          lastFatal = FATAL_CODES.has(message.code);
        } else {
          continue;
        }
        answers++;
        answered.resolve();
        answered = Promise.withResolvers<void>();
      }
      return "closed";
    } catch (error) {
      return error instanceof Deno.errors.ConnectionReset ? "reset" : "closed";
    } finally {
      ended = true;
      answered.resolve();
    }
  })();
  const awaitAnswer = async (after: number) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ANSWER_TIMEOUT_MS);
    });
    const deadline = performance.now() + ANSWER_TIMEOUT_MS;
    try {
      while (answers <= after && !ended && performance.now() < deadline) {
        await Promise.race([answered.promise, timeout]);
      }
    } finally {
      clearTimeout(timer);
    }
  };
  let sentAll = true;
  let answersBeforeRequest = 0;
  try {
    for (const item of connection.frames) {
      if (ended) {
        sentAll = false;
        break;
      }
      let frame: Uint8Array;
      if (item instanceof Uint8Array) {
        answersBeforeRequest = answers;
        frame = item;
      } else {
        if (item.fresh) await awaitAnswer(answersBeforeRequest);
        if (ended) {
          sentAll = false;
          break;
        }
        frame = item.build(transferId);
      }
      let written = 0;
      while (written < frame.length) {
        written += await conn.write(frame.subarray(written));
      }
      stats.framesSent++;
      stats.bytesSent += frame.length;
    }
    if (!ended) await conn.closeWrite();
  } catch {
    sentAll = false;
  }
  const end = await replies;
  clearTimeout(timer);
  if (timedOut) stats.hung++;
  else conn.close();
  if (!timedOut && (!sentAll || lastFatal || end === "reset")) {
    stats.closedByServer++;
  }
  if (end === "reset") stats.resets++;
}

/** What {@linkcode verifyGoodClient} moved. */
export interface GoodClientResult {
  sha256: string;
  bytes: number;
}

/**
 * Uploads a random file as a well-behaved client, downloads it again and
 * checks all three digests agree; throws when anything differs.
 */
export async function verifyGoodClient(
  port: number,
  workDir: string,
  options: { host?: string; bytes?: number; log?: Logger } = {},
): Promise<GoodClientResult> {
  const bytes = options.bytes ?? 100_003;
  const source = `${workDir}/good-client.bin`;
  const copy = `${workDir}/good-client.copy`;
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65_536) {
    crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 65_536)));
  }
  await Deno.writeFile(source, data);
  await Deno.remove(copy).catch(() => undefined);
  const expected = await hashFile(source);
  using client = await FtvClient.connect({
    host: options.host ?? "127.0.0.1",
    port,
    timeoutMs: 10_000,
    log: options.log ?? new Logger("FileTransferClient", { level: "ERROR" }),
  });
  const sent = await client.send(source, { as: "good-client.bin" });
  const got = await client.get("good-client.bin", { out: copy });
  const actual = await hashFile(copy);
  if (
    sent.sha256 !== expected || got.sha256 !== expected || actual !== expected
  ) {
    throw new Error(
      `Cannot verify the good client: sent ${expected}, server ${sent.sha256}, got ${got.sha256}, on disk ${actual}`,
    );
  }
  return { sha256: expected, bytes };
}

/**
 * Files under `root` (recursively, as `path size`), leaving out `skip`: a
 * snapshot to compare before and after, to prove nothing landed outside.
 */
export async function snapshotTree(
  root: string,
  skip: string,
): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, depth: number) => {
    if (depth > 16) return;
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (path === skip) continue;
      const info = await Deno.lstat(path);
      out.push(`${path} ${info.isDirectory ? "dir" : info.size}`);
      if (info.isDirectory) await walk(path, depth + 1);
    }
  };
  await walk(root, 0);
  return out.sort();
}

/**
 * Entries of a server folder that should not be there: anything that is not
 * a regular file with a legal name (or its part or state file), or the
 * bookkeeping folder.
 */
export async function strayEntries(dir: string): Promise<string[]> {
  const stray: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name === META_DIR && entry.isDirectory) continue;
    const base = entry.name.endsWith(PART_SUFFIX)
      ? entry.name.slice(0, -PART_SUFFIX.length)
      : entry.name.endsWith(STATE_SUFFIX)
      ? entry.name.slice(0, -STATE_SUFFIX.length)
      : entry.name;
    if (!entry.isFile || nameRefusal(base)) stray.push(entry.name);
  }
  return stray.sort();
}

const FUZZ_USAGE =
  `Usage: deno task fuzz [--frames N] [--seed N] [--concurrency N]

Starts an ftv server in this process on 127.0.0.1, sends it N fuzzed frames
(default 10000) over many connections, then checks that a good client still
transfers a file verified and that nothing was written outside the server's
folder. Exit code 0 when all holds.`;

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      frames: { type: "string" },
      seed: { type: "string" },
      concurrency: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(FUZZ_USAGE);
    return 0;
  }
  const frames = Number(values.frames ?? 10_000);
  const seed = values.seed === undefined
    ? crypto.getRandomValues(new Uint32Array(1))[0]!
    : Number(values.seed);
  const concurrency = Number(values.concurrency ?? 8);
  for (
    const [name, value] of [["frames", frames], ["seed", seed], [
      "concurrency",
      concurrency,
    ]] as const
  ) {
    if (!Number.isSafeInteger(value) || value < (name === "seed" ? 0 : 1)) {
      console.error(`fuzz: --${name} must be a whole number`);
      return 2;
    }
  }
  const sandbox = await Deno.makeTempDir({ prefix: "ftv-fuzz-" });
  const dir = `${sandbox}/srv`;
  const outside = `${sandbox}/outside`;
  let serverLines = 0;
  try {
    await Deno.mkdir(dir);
    await Deno.mkdir(outside);
    await Deno.writeTextFile(`${outside}/canary.txt`, "do not touch\n");
    await Deno.writeFile(
      `${dir}/seed.bin`,
      crypto.getRandomValues(new Uint8Array(5000)),
    );
    const before = await snapshotTree(sandbox, dir);
    await using server = await serve({
      host: "127.0.0.1",
      port: 0,
      dir,
      chunkSize: 1024,
      idleTimeoutMs: 5000,
      handshakeTimeoutMs: 5000,
      log: new Logger("FileTransferServer", {
        level: "WARNING",
        sink: () => void serverLines++,
      }),
    });
    let crashed: unknown;
    server.finished.catch((error) => crashed = error);
    console.log(
      `Fuzzing 127.0.0.1:${server.addr.port} with ${frames} frames, seed ${seed}`,
    );
    const stats = await runFuzz({
      port: server.addr.port,
      frames,
      seed,
      concurrency,
      outside,
    });
    console.log(`frames sent:        ${stats.framesSent}`);
    console.log(`bytes sent:         ${stats.bytesSent}`);
    console.log(`connections:        ${stats.connections}`);
    console.log(`closed by server:   ${stats.closedByServer}`);
    console.log(`ended by reset:     ${stats.resets}`);
    console.log(
      `frames received:    ${stats.framesReceived} (${
        Object.entries(stats.replyTypes).sort().map(([type, count]) =>
          `${type} ${count}`
        ).join(", ")
      })`,
    );
    console.log(`errors received:    ${stats.errorsReceived}`);
    for (const [code, count] of Object.entries(stats.errorCodes).sort()) {
      console.log(
        `  ${code.padEnd(20)}${String(count).padStart(6)}  e.g. ${
          stats.errorSamples[code]?.slice(0, 100)
        }`,
      );
    }
    console.log(`hung connections:   ${stats.hung}`);
    console.log(`server log lines:   ${serverLines} (warnings and errors)`);
    console.log(`time:               ${(stats.ms / 1000).toFixed(1)} s`);
    const problems: string[] = [];
    if (crashed !== undefined) {
      problems.push(`the server stopped: ${(crashed as Error).message}`);
    }
    if (stats.hung > 0) problems.push(`${stats.hung} connection(s) hung`);
    const good = await verifyGoodClient(server.addr.port, sandbox);
    const after = (await snapshotTree(sandbox, dir)).filter((line) =>
      !line.startsWith(`${sandbox}/good-client.`)
    );
    if (JSON.stringify(after) !== JSON.stringify(before)) {
      problems.push(
        `files changed outside the server folder: ${
          after.filter((line) => !before.includes(line)).join(", ")
        }`,
      );
    }
    const stray = await strayEntries(dir);
    if (stray.length > 0) {
      problems.push(`unexpected entries in the server folder: ${stray}`);
    }
    if (problems.length > 0) {
      for (const problem of problems) console.error(`FAILED: ${problem}`);
      return 1;
    }
    console.log(
      `Afterwards a good client sent and got back ${good.bytes} bytes, verified (SHA-256 ${good.sha256}); nothing was written outside the server folder.`,
    );
    return 0;
  } finally {
    await Deno.remove(sandbox, { recursive: true });
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
