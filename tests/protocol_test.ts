import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import {
  allocDataFrame,
  type ByteSource,
  controlFrame as frameAround,
  type ControlMessage,
  DATA_FRAME_OVERHEAD,
  encodeControl,
  encodeData,
  type FileEntry,
  type Frame,
  FRAME_KIND,
  FRAME_PREFIX_BYTES,
  FrameDecoderStream,
  FrameReader,
  MAX_CHUNK_BYTES,
  MAX_CONTROL_BYTES,
  MAX_FRAME_BYTES,
  streamSource,
} from "../protocol.ts";
import { ProtocolError } from "../base/errors.ts";

// ---------------------------------------------------------------- helpers

const encoder = new TextEncoder();

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Deterministic bytes, so a failing case can be reproduced. */
function patternBytes(length: number, salt = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (i * 31 + salt * 7 + 11) & 0xff;
  return out;
}

/** Splits `bytes` into pieces of `size` bytes (the last may be shorter). */
function pieces(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    out.push(bytes.subarray(i, i + size));
  }
  return out;
}

/** A header alone: length prefix and kind, with no body behind it. */
function frameHeader(length: number, kind: number): Uint8Array {
  const header = new Uint8Array(FRAME_PREFIX_BYTES);
  new DataView(header.buffer).setUint32(0, length);
  header[4] = kind;
  return header;
}

/** A control frame around arbitrary JSON bytes, with a correct CRC. */
function rawControlFrame(json: Uint8Array | string): Uint8Array {
  return frameAround(typeof json === "string" ? encoder.encode(json) : json);
}

/** Decodes `chunks` through a FrameDecoderStream, collecting every frame. */
function decodeStream(chunks: Iterable<Uint8Array>): Promise<Frame[]> {
  return Array.fromAsync(
    ReadableStream.from(chunks).pipeThrough(new FrameDecoderStream()),
  );
}

/** A source that hands out `chunks` one read at a time, never more than asked. */
function chunkSource(chunks: Iterable<Uint8Array>): ByteSource {
  return streamSource(ReadableStream.from(chunks));
}

/** Reads every frame with a FrameReader until the clean end. */
async function readFrames(
  chunks: Iterable<Uint8Array>,
  bufferSize?: number,
): Promise<Frame[]> {
  const reader = new FrameReader(chunkSource(chunks), bufferSize);
  const frames: Frame[] = [];
  for (let frame = await reader.next(); frame; frame = await reader.next()) {
    frames.push(frame);
  }
  return frames;
}

/** Frames compared field by field; payloads by content, fast even at 16 MiB. */
function assertFramesEqual(actual: Frame[], expected: Frame[]): void {
  assert.equal(actual.length, expected.length, "number of frames");
  for (const [i, want] of expected.entries()) {
    const got = actual[i]!;
    if (want.kind === "control") {
      assert.deepEqual(got, want, `frame ${i}`);
      continue;
    }
    assert.equal(got.kind, "data", `frame ${i} kind`);
    if (got.kind !== "data") return;
    const { payload: gotPayload, ...gotHeader } = got;
    const { payload: wantPayload, ...wantHeader } = want;
    assert.deepEqual(gotHeader, wantHeader, `frame ${i} header`);
    assert.equal(gotPayload.length, wantPayload.length, `frame ${i} length`);
    assert.ok(
      Buffer.from(gotPayload.buffer, gotPayload.byteOffset, gotPayload.length)
        .equals(wantPayload),
      `frame ${i} payload differs`,
    );
  }
}

function controlFrame(message: ControlMessage): Frame {
  return { kind: "control", message };
}

function dataFrame(
  transferId: number,
  seq: number,
  payload: Uint8Array,
  flags = 0,
): Frame {
  return { kind: "data", transferId, seq, flags, intact: true, payload };
}

function encodeFrame(frame: Frame): Uint8Array {
  return frame.kind === "control"
    ? encodeControl(frame.message)
    : encodeData(frame.transferId, frame.seq, frame.payload, frame.flags);
}

function listingOf(count: number): ControlMessage {
  const files: FileEntry[] = [];
  for (let i = 0; i < count; i++) {
    files.push({
      name: `file-${i}-数据-résumé.bin`,
      size: i * 1_000_003,
      sha256: i.toString(16).padStart(64, "0"),
      mtimeMs: 1_700_000_000_000 + i,
    });
  }
  return { type: "listing", files };
}

/** One of every control message, a listing, and data frames of several sizes. */
const SMALL_FRAMES: Frame[] = [
  controlFrame({ type: "hello", version: 1, agent: "ftv/test" }),
  controlFrame({
    type: "hello",
    version: 1,
    agent: "ftv/test",
    chunkSize: 1024,
  }),
  controlFrame({
    type: "put",
    name: "résumé.pdf",
    size: 5_000,
    chunkSize: 1024,
    mtimeMs: 1_700_000_000_123,
    maxRetries: 3,
  }),
  controlFrame({ type: "get", name: "数据.bin", maxRetries: 2 }),
  controlFrame({
    type: "offer",
    transferId: 7,
    name: "a b.txt",
    size: 0,
    chunkSize: 512,
    sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    mtimeMs: 0,
  }),
  controlFrame({ type: "ready", transferId: 7, have: "AAE=" }),
  controlFrame({ type: "ready", transferId: 8, have: "", verifyPart: true }),
  controlFrame({ type: "sums", transferId: 8, crc32: "AAAAAP////8=" }),
  dataFrame(7, 0, new Uint8Array(0)),
  dataFrame(7, 1, new Uint8Array([0x42])),
  dataFrame(0xffff_ffff, 0xffff_fffe, patternBytes(300, 1), 0xff),
  controlFrame({ type: "nack", transferId: 7, seqs: [0, 3, 4], round: 1 }),
  controlFrame({ type: "nack", transferId: 7, seqs: [], round: 2 }),
  controlFrame({ type: "done", transferId: 7, sha256: "ab".repeat(32) }),
  controlFrame({
    type: "verified",
    transferId: 7,
    sha256: "cd".repeat(32),
    bytes: 2 ** 40,
  }),
  controlFrame({ type: "list" }),
  controlFrame(listingOf(4)),
  controlFrame({
    type: "error",
    code: "not_found",
    message: 'Cannot send "x": no such file',
  }),
];
const SMALL_BYTES = concat(SMALL_FRAMES.map(encodeFrame));

// ---------------------------------------------------------------- round trips

Deno.test({
  name: "FrameDecoderStream decodes frames split at every byte offset",
  permissions: "none",
  async fn() {
    for (let cut = 0; cut <= SMALL_BYTES.length; cut++) {
      const frames = await decodeStream([
        SMALL_BYTES.subarray(0, cut),
        SMALL_BYTES.subarray(cut),
      ]);
      assertFramesEqual(frames, SMALL_FRAMES);
    }
  },
});

Deno.test({
  name: "FrameDecoderStream decodes frames fed one byte per chunk",
  permissions: "none",
  async fn() {
    assertFramesEqual(await decodeStream(pieces(SMALL_BYTES, 1)), SMALL_FRAMES);
  },
});

Deno.test({
  name: "FrameDecoderStream decodes many frames from one chunk",
  permissions: "none",
  async fn() {
    assertFramesEqual(await decodeStream([SMALL_BYTES]), SMALL_FRAMES);
  },
});

Deno.test({
  name: "FrameDecoderStream skips empty chunks",
  permissions: "none",
  async fn() {
    const empty = new Uint8Array(0);
    const chunks = [empty, ...pieces(SMALL_BYTES, 97), empty].flatMap((c) => [
      c,
      empty,
    ]);
    assertFramesEqual(await decodeStream(chunks), SMALL_FRAMES);
  },
});

Deno.test({
  name: "FrameReader decodes frames split at every byte offset",
  permissions: "none",
  async fn(t) {
    // A small read-ahead sends large bodies down the direct-read path too.
    for (const bufferSize of [16, 64, undefined]) {
      await t.step(`read-ahead ${bufferSize ?? "default"}`, async () => {
        for (let cut = 0; cut <= SMALL_BYTES.length; cut++) {
          const frames = await readFrames(
            [SMALL_BYTES.subarray(0, cut), SMALL_BYTES.subarray(cut)],
            bufferSize,
          );
          assertFramesEqual(frames, SMALL_FRAMES);
        }
      });
    }
  },
});

Deno.test({
  name: "FrameReader decodes frames fed one byte per read and all in one read",
  permissions: "none",
  async fn() {
    assertFramesEqual(await readFrames(pieces(SMALL_BYTES, 1)), SMALL_FRAMES);
    assertFramesEqual(
      await readFrames(pieces(SMALL_BYTES, 1), 8),
      SMALL_FRAMES,
    );
    assertFramesEqual(await readFrames([SMALL_BYTES]), SMALL_FRAMES);
  },
});

/** A listing larger than the default read-ahead, and the largest data frame allowed. */
const LARGE_FRAMES: Frame[] = [
  controlFrame({ type: "hello", version: 1, agent: "ftv/test" }),
  controlFrame(listingOf(4_000)),
  dataFrame(1, 0, patternBytes(MAX_CHUNK_BYTES, 2), 1),
  dataFrame(1, 1, new Uint8Array(0)),
  dataFrame(1, 2, patternBytes(MAX_CHUNK_BYTES - 1, 3)),
  controlFrame({ type: "done", transferId: 1, sha256: "ef".repeat(32) }),
];

Deno.test({
  name:
    "FrameDecoderStream and FrameReader decode a large listing and maximum-size data frames",
  permissions: "none",
  async fn(t) {
    const encoded = LARGE_FRAMES.map(encodeFrame);
    const bytes = concat(encoded);
    assert.ok(encoded[1]!.length > 256 * 1024, "listing exceeds read-ahead");
    assert.equal(encoded[2]!.length, 4 + MAX_FRAME_BYTES);

    // Cuts at every offset in each frame's prefix and header, where the
    // decoder switches between reading header and body.
    const cuts: number[] = [];
    let start = 0;
    for (const frame of encoded) {
      for (let k = -1; k <= DATA_FRAME_OVERHEAD + 1; k++) cuts.push(start + k);
      start += frame.length;
    }
    const splits = cuts.filter((cut) => cut >= 0 && cut <= bytes.length);

    await t.step("one chunk", async () => {
      assertFramesEqual(await decodeStream([bytes]), LARGE_FRAMES);
      assertFramesEqual(await readFrames([bytes]), LARGE_FRAMES);
    });
    await t.step("64 KiB + 1 pieces", async () => {
      assertFramesEqual(
        await decodeStream(pieces(bytes, 64 * 1024 + 1)),
        LARGE_FRAMES,
      );
      assertFramesEqual(await readFrames(pieces(bytes, 4093)), LARGE_FRAMES);
    });
    await t.step("two pieces cut around every frame header", async () => {
      for (const cut of splits) {
        const halves = [bytes.subarray(0, cut), bytes.subarray(cut)];
        assertFramesEqual(await readFrames(halves), LARGE_FRAMES);
      }
      for (const cut of splits.filter((_, i) => i % 4 === 0)) {
        const halves = [bytes.subarray(0, cut), bytes.subarray(cut)];
        assertFramesEqual(await decodeStream(halves), LARGE_FRAMES);
      }
    });
  },
});

Deno.test({
  name: "FrameReader.next() returns null at a clean end between frames",
  permissions: "none",
  async fn() {
    const one = encodeControl({ type: "list" });
    const reader = new FrameReader(chunkSource([concat([one, one])]));
    assert.deepEqual(await reader.next(), controlFrame({ type: "list" }));
    assert.equal(reader.buffered, one.length);
    assert.deepEqual(await reader.next(), controlFrame({ type: "list" }));
    assert.equal(reader.buffered, 0);
    assert.equal(await reader.next(), null);
    assert.equal(await reader.next(), null);
  },
});

Deno.test({
  name: "FrameDecoderStream ends cleanly on an empty stream",
  permissions: "none",
  async fn() {
    assert.deepEqual(await decodeStream([]), []);
    assert.deepEqual(await decodeStream([new Uint8Array(0)]), []);
  },
});

Deno.test({
  name: "encodeData() encodes a payload that is a view into a larger buffer",
  permissions: "none",
  async fn() {
    const backing = patternBytes(1000, 4);
    const payload = backing.subarray(100, 700);
    const frames = await decodeStream([encodeData(3, 4, payload, 2)]);
    assertFramesEqual(frames, [dataFrame(3, 4, payload.slice(), 2)]);
  },
});

// ---------------------------------------------------------------- limits

Deno.test({
  name:
    "FrameDecoderStream rejects an oversized length from the header alone, while the stream stays open",
  permissions: "none",
  async fn(t) {
    const cases: [string, Uint8Array][] = [
      ["data frame one byte over", frameHeader(MAX_FRAME_BYTES + 1, 2)],
      ["data frame of 4 GiB", frameHeader(0xffff_ffff, FRAME_KIND.data)],
      [
        "control frame one byte over",
        frameHeader(1 + 4 + MAX_CONTROL_BYTES + 1, FRAME_KIND.control),
      ],
      ["control frame of 4 GiB", frameHeader(0xffff_ffff, FRAME_KIND.control)],
      ["control frame too short for CRC and JSON", frameHeader(6, 1)],
      ["data frame too short for its header", frameHeader(13, 2)],
      ["zero length", frameHeader(0, FRAME_KIND.control)],
    ];
    for (const [label, header] of cases) {
      await t.step(label, async () => {
        const decoder = new FrameDecoderStream();
        const writer = decoder.writable.getWriter();
        // Nothing but the header is ever written, and the input is never closed.
        const written = writer.write(header).catch(() => {});
        const reader = decoder.readable.getReader();
        await assert.rejects(reader.read(), (error: unknown) => {
          assert.ok(error instanceof ProtocolError, String(error));
          assert.match(error.message, /length \d+ is outside/);
          return true;
        });
        // The failure reaches the writer, so a producer stops sending.
        await assert.rejects(writer.ready, ProtocolError);
        await written;
      });
    }
  },
});

Deno.test({
  name:
    "FrameReader rejects an oversized length without asking the source for the body",
  permissions: "none",
  async fn(t) {
    const cases: [string, Uint8Array][] = [
      ["data", frameHeader(MAX_FRAME_BYTES + 1, FRAME_KIND.data)],
      [
        "control",
        frameHeader(1 + 4 + MAX_CONTROL_BYTES + 1, FRAME_KIND.control),
      ],
    ];
    for (const [label, header] of cases) {
      await t.step(label, async () => {
        let reads = 0;
        const source: ByteSource = {
          read(p) {
            reads++;
            if (reads > 1) throw new Error("the body was asked for");
            p.set(header);
            return Promise.resolve(header.length);
          },
        };
        await assert.rejects(new FrameReader(source).next(), ProtocolError);
        assert.equal(reads, 1);
      });
    }
  },
});

Deno.test({
  name: "FrameReader accepts the largest lengths the caps allow",
  permissions: "none",
  async fn(t) {
    const cases: [string, Uint8Array][] = [
      ["data", frameHeader(MAX_FRAME_BYTES, FRAME_KIND.data)],
      [
        "control",
        frameHeader(1 + 4 + MAX_CONTROL_BYTES, FRAME_KIND.control),
      ],
    ];
    for (const [label, header] of cases) {
      await t.step(label, async () => {
        // The header passes; only the missing body makes it fail.
        await assert.rejects(
          readFrames([header]),
          (error: unknown) =>
            error instanceof ProtocolError &&
            /stream ended after 0 of \d+ body bytes/.test(error.message),
        );
      });
    }
  },
});

Deno.test({
  name: "encodeControl() throws RangeError over the control cap",
  permissions: "none",
  async fn() {
    const base = encoder.encode(
      JSON.stringify({ type: "error", code: "internal_error", message: "" }),
    ).length;
    const fits: ControlMessage = {
      type: "error",
      code: "internal_error",
      message: "x".repeat(MAX_CONTROL_BYTES - base),
    };
    assertFramesEqual(await readFrames([encodeControl(fits)]), [
      controlFrame(fits),
    ]);
    assert.throws(
      () => encodeControl({ ...fits, message: fits.message + "x" }),
      RangeError,
    );
    assert.throws(() => encodeControl(listingOf(30_000)), RangeError);
  },
});

Deno.test({
  name: "encodeData() and allocDataFrame() throw RangeError over the chunk cap",
  permissions: "none",
  fn() {
    assert.throws(() => allocDataFrame(MAX_CHUNK_BYTES + 1), RangeError);
    assert.throws(
      () => encodeData(1, 0, new Uint8Array(MAX_CHUNK_BYTES + 1)),
      RangeError,
    );
  },
});

// ---------------------------------------------------------------- broken input

/** Asserts the bytes yield `good` frames and then a ProtocolError matching `pattern`. */
async function assertFailsAfter(
  chunks: Uint8Array[],
  good: Frame[],
  pattern: RegExp,
): Promise<void> {
  const got: Frame[] = [];
  const frames = ReadableStream.from(chunks).pipeThrough(
    new FrameDecoderStream(),
  );
  await assert.rejects(
    (async () => {
      for await (const frame of frames) got.push(frame);
    })(),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError, String(error));
      assert.match(error.message, pattern);
      return true;
    },
  );
  assertFramesEqual(got, good);
}

Deno.test({
  name: "FrameDecoderStream rejects a stream truncated mid-header",
  permissions: "none",
  async fn(t) {
    const list = encodeControl({ type: "list" });
    const data = encodeData(1, 2, patternBytes(40));
    for (let keep = 1; keep < FRAME_PREFIX_BYTES; keep++) {
      await t.step(`${keep} header bytes after a frame`, async () => {
        await assertFailsAfter(
          [list, data.subarray(0, keep)],
          [controlFrame({ type: "list" })],
          new RegExp(`stream ended after ${keep} of 5 bytes`),
        );
      });
    }
  },
});

Deno.test({
  name: "FrameDecoderStream rejects a stream truncated mid-body",
  permissions: "none",
  async fn(t) {
    const list = encodeControl({ type: "list" });
    for (
      const [label, frame] of [
        ["control", encodeControl(listingOf(3))],
        ["data", encodeData(1, 2, patternBytes(40))],
        ["data, inside its header", encodeData(1, 2, patternBytes(40))],
      ] as const
    ) {
      const cuts = label === "data, inside its header"
        ? [FRAME_PREFIX_BYTES + 1, DATA_FRAME_OVERHEAD - 1]
        : [FRAME_PREFIX_BYTES, frame.length - 1];
      for (const cut of cuts) {
        await t.step(`${label}, cut at ${cut}`, async () => {
          await assertFailsAfter(
            [list, frame.subarray(0, cut)],
            [controlFrame({ type: "list" })],
            /stream ended/,
          );
          // The same through FrameReader with a read-ahead smaller than the body.
          await assert.rejects(
            readFrames([list, frame.subarray(0, cut)], 8),
            ProtocolError,
          );
        });
      }
    }
  },
});

Deno.test({
  name: "FrameDecoderStream rejects garbage bytes",
  permissions: "none",
  async fn(t) {
    const cases: [string, Uint8Array][] = [
      ["an HTTP request", encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
      ["all ones", new Uint8Array(64).fill(0xff)],
      ["all zeros", new Uint8Array(64)],
      ["JSON without a frame", encoder.encode('{"type":"list"}')],
    ];
    for (const [label, bytes] of cases) {
      await t.step(label, async () => {
        await assertFailsAfter([bytes], [], /^Cannot accept/);
      });
    }
  },
});

Deno.test({
  name: "FrameDecoderStream rejects an unknown frame kind",
  permissions: "none",
  async fn(t) {
    for (const kind of [0, 3, 0x7f, 0xff]) {
      await t.step(`kind ${kind}`, async () => {
        const frame = encodeControl({ type: "list" });
        frame[4] = kind;
        await assertFailsAfter(
          [frame],
          [],
          new RegExp(`unknown kind ${kind}`),
        );
      });
    }
  },
});

Deno.test({
  name: "FrameDecoderStream rejects a control frame with a bad CRC",
  permissions: "none",
  async fn(t) {
    const good = encodeControl({ type: "get", name: "report.txt" });
    for (let offset = 5; offset < good.length; offset++) {
      await t.step(`byte ${offset} flipped`, async () => {
        const bad = good.slice();
        bad[offset]! ^= 0x10;
        await assertFailsAfter([bad], [], /CRC mismatch/);
      });
    }
  },
});

Deno.test({
  name: "FrameDecoderStream rejects malformed control messages",
  permissions: "none",
  async fn(t) {
    const cases: [string, Uint8Array | string, RegExp][] = [
      ["not JSON", '{"type":', /not UTF-8 JSON/],
      ["invalid UTF-8", new Uint8Array([0x22, 0xff, 0xfe, 0x22]), /UTF-8/],
      ["an array", '[{"type":"list"}]', /not an object/],
      ["null", "null", /not an object/],
      ["a number", "42", /not an object/],
      ["a string", '"list"', /not an object/],
      ["no type", "{}", /unknown type/],
      ["a numeric type", '{"type":1}', /unknown type/],
      ["an unknown type", '{"type":"format_disk"}', /unknown type/],
      ["an inherited name as type", '{"type":"__proto__"}', /unknown type/],
      ["toString as type", '{"type":"toString"}', /unknown type/],
      [
        "hello without agent",
        '{"type":"hello","version":1}',
        /"agent" must be a string/,
      ],
      [
        "hello with a string version",
        '{"type":"hello","version":"1","agent":"x"}',
        /"version" must be a non-negative integer/,
      ],
      [
        "hello with a negative version",
        '{"type":"hello","version":-1,"agent":"x"}',
        /"version"/,
      ],
      [
        "hello with a fractional version",
        '{"type":"hello","version":1.5,"agent":"x"}',
        /"version"/,
      ],
      [
        "hello with a string chunkSize",
        '{"type":"hello","version":1,"agent":"x","chunkSize":"big"}',
        /"chunkSize"/,
      ],
      [
        "hello with a negative chunkSize",
        '{"type":"hello","version":1,"agent":"x","chunkSize":-512}',
        /"chunkSize"/,
      ],
      [
        "put with a negative size",
        '{"type":"put","name":"a","size":-1,"chunkSize":512,"mtimeMs":0,"maxRetries":3}',
        /"size"/,
      ],
      [
        "put with an unsafe size",
        `{"type":"put","name":"a","size":${
          2 ** 53
        },"chunkSize":512,"mtimeMs":0,"maxRetries":3}`,
        /"size"/,
      ],
      [
        "put with a null name",
        '{"type":"put","name":null,"size":1,"chunkSize":512,"mtimeMs":0,"maxRetries":3}',
        /"name" must be a string/,
      ],
      [
        "put with a fractional mtimeMs",
        '{"type":"put","name":"a","size":1,"chunkSize":512,"mtimeMs":0.5,"maxRetries":3}',
        /"mtimeMs"/,
      ],
      [
        "get with a numeric name",
        '{"type":"get","name":7}',
        /"name" must be a string/,
      ],
      [
        "get with a negative maxRetries",
        '{"type":"get","name":"a","maxRetries":-1}',
        /"maxRetries"/,
      ],
      [
        "ready with a null bitmap",
        '{"type":"ready","transferId":1,"have":null}',
        /"have"/,
      ],
      [
        "ready with a string verifyPart",
        '{"type":"ready","transferId":1,"have":"","verifyPart":"yes"}',
        /"verifyPart" must be a boolean/,
      ],
      [
        "sums without crc32",
        '{"type":"sums","transferId":1}',
        /"crc32"/,
      ],
      ["done without sha256", '{"type":"done","transferId":1}', /"sha256"/],
      [
        "nack with seqs as a string",
        '{"type":"nack","transferId":1,"seqs":"1,2","round":1}',
        /"seqs"/,
      ],
      [
        "nack with seqs as an object",
        '{"type":"nack","transferId":1,"seqs":{"0":1},"round":1}',
        /"seqs"/,
      ],
      [
        "nack with null seqs",
        '{"type":"nack","transferId":1,"seqs":null,"round":1}',
        /"seqs"/,
      ],
      [
        "nack with a fractional seq",
        '{"type":"nack","transferId":1,"seqs":[1,1.5],"round":1}',
        /"seqs" must be a list of sequence numbers/,
      ],
      [
        "nack with a negative seq",
        '{"type":"nack","transferId":1,"seqs":[-1],"round":1}',
        /"seqs"/,
      ],
      [
        "nack with a string seq",
        '{"type":"nack","transferId":1,"seqs":["1"],"round":1}',
        /"seqs"/,
      ],
      [
        "nack with a null seq",
        '{"type":"nack","transferId":1,"seqs":[null],"round":1}',
        /"seqs"/,
      ],
      [
        "nack with a negative round",
        '{"type":"nack","transferId":1,"seqs":[],"round":-2}',
        /"round"/,
      ],
      [
        "verified with a string byte count",
        '{"type":"verified","transferId":1,"sha256":"x","bytes":"10"}',
        /"bytes"/,
      ],
      [
        "listing with files as an object",
        '{"type":"listing","files":{}}',
        /"files"/,
      ],
      [
        "listing with a number as a file",
        '{"type":"listing","files":[1]}',
        /file 0/,
      ],
      [
        "listing with a file of negative size",
        '{"type":"listing","files":[{"name":"a","size":-1,"sha256":"x","mtimeMs":0}]}',
        /file 0: field "size"/,
      ],
      [
        "listing with a file without a name",
        '{"type":"listing","files":[{"size":1,"sha256":"x","mtimeMs":0}]}',
        /file 0: field "name"/,
      ],
      [
        "error with a numeric code",
        '{"type":"error","code":5,"message":"x"}',
        /"code"/,
      ],
    ];
    for (const [label, json, pattern] of cases) {
      await t.step(label, async () => {
        const list = encodeControl({ type: "list" });
        await assertFailsAfter(
          [list, rawControlFrame(json)],
          [controlFrame({ type: "list" })],
          pattern,
        );
      });
    }
  },
});

Deno.test({
  name: "FrameDecoderStream accepts a file modified before 1970",
  permissions: "none",
  async fn() {
    const frames: Frame[] = [
      controlFrame({
        type: "put",
        name: "old.txt",
        size: 1,
        chunkSize: 512,
        mtimeMs: -86_400_000,
        maxRetries: 3,
      }),
      controlFrame({
        type: "listing",
        files: [{ name: "old.txt", size: 1, sha256: "x", mtimeMs: -1 }],
      }),
    ];
    assertFramesEqual(await decodeStream(frames.map(encodeFrame)), frames);
  },
});

Deno.test({
  name:
    "FrameDecoderStream marks a data frame with any flipped bit after its prefix as not intact",
  permissions: "none",
  async fn(t) {
    const payload = patternBytes(24, 5);
    const good = encodeData(0x01020304, 9, payload, 1);
    const after = encodeControl({ type: "list" });
    const fields = (offset: number) =>
      offset < 9
        ? "transferId"
        : offset < 13
        ? "seq"
        : offset < 14
        ? "flags"
        : offset < 18
        ? "crc"
        : "payload";
    for (let offset = FRAME_PREFIX_BYTES; offset < good.length; offset++) {
      await t.step(`${fields(offset)} byte ${offset}`, async () => {
        const bad = good.slice();
        bad[offset]! ^= 1 << (offset % 8);
        const [frame, next] = await decodeStream([bad, after]);
        assert.ok(frame?.kind === "data");
        assert.equal(frame.intact, false);
        // The stream goes on: a bad chunk is asked for again, not fatal.
        assert.deepEqual(next, controlFrame({ type: "list" }));
      });
    }
    await t.step("the untouched frame is intact", async () => {
      const [frame] = await decodeStream([good]);
      assert.ok(frame?.kind === "data");
      assert.equal(frame.intact, true);
    });
    await t.step("an empty payload with a flipped seq", async () => {
      const bad = encodeData(1, 1, new Uint8Array(0));
      bad[12]! ^= 0x01;
      const [frame] = await decodeStream([bad]);
      assert.ok(frame?.kind === "data");
      assert.equal(frame.seq, 0);
      assert.equal(frame.intact, false);
    });
  },
});

// ---------------------------------------------------------------- stream plumbing

Deno.test({
  name: "FrameDecoderStream cancels its input source when decoding fails",
  permissions: "none",
  async fn() {
    let cancelled: unknown;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(new Uint8Array(64).fill(0xff));
      },
      cancel(reason) {
        cancelled = reason;
      },
    });
    const decoder = new FrameDecoderStream();
    const piped = source.pipeTo(decoder.writable);
    await assert.rejects(Array.fromAsync(decoder.readable), ProtocolError);
    await assert.rejects(piped, ProtocolError);
    assert.ok(cancelled instanceof ProtocolError);
  },
});

Deno.test({
  name:
    "FrameDecoderStream cancels its input source when the output is cancelled",
  permissions: "none",
  async fn() {
    const frame = encodeControl({ type: "list" });
    let cancelled = false;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(frame);
      },
      cancel() {
        cancelled = true;
      },
    });
    const decoder = new FrameDecoderStream();
    const piped = source.pipeTo(decoder.writable);
    for await (const got of decoder.readable) {
      assert.deepEqual(got, controlFrame({ type: "list" }));
      break;
    }
    await assert.rejects(piped);
    assert.equal(cancelled, true);
  },
});
