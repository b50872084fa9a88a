/**
 * The fuzzer's frames: {@linkcode FrameFuzzer} makes one connection's worth
 * at a time, reproducibly from a seed: valid frames, valid frames damaged
 * ({@linkcode mutateFrame}: flipped bits, cut short, wrong length prefix,
 * wrong kind, bad CRC), random JSON, valid-shaped messages in the wrong
 * order, data frames for transfers that do not exist, `nack`s naming a
 * chunk thousands of times, hellos with odd versions, names that try to
 * leave the server's folder, and plain junk.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  controlFrame,
  type ControlMessage,
  encodeControl,
  encodeData,
  FRAME_KIND,
  FRAME_PREFIX_BYTES,
  MAX_CHUNK_BYTES,
  MAX_CONTROL_BYTES,
  MAX_FRAME_BYTES,
  PROTOCOL_VERSION,
} from "../../protocol.ts";
import { Rng } from "../../faults/rng.ts";
import { ERROR_CODE } from "../../base/errors.ts";
import { hostileNames, ODD_NAMES } from "./names.ts";

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
/** A control frame of any JSON value, shaped right or not. */
function jsonFrame(value: unknown): Uint8Array {
  return controlFrame(encoder.encode(JSON.stringify(value) ?? "null"));
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
    return controlFrame(Uint8Array.of(0x7b, 0xff, 0xfe, 0xc0, 0x80, 0x7d));
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
