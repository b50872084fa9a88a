/**
 * Loss repair within the first round: early `nack`s on the wire, and the
 * receiver hashing chunks that arrived ahead of a missing one from memory.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { ChunkBitmap } from "../engine/bitmap.ts";
import { ChunkStore, MAX_AHEAD_BYTES } from "../engine/chunk_store.ts";
import { ErrorSimulator } from "../faults/simulator.ts";
import { get, Logger, send } from "../mod.ts";
import {
  type ControlMessage,
  encodeControl,
  encodeData,
  type Frame,
} from "../protocol.ts";
import { MAX_EARLY_ASKS, OVERDUE_DISTANCE } from "../engine/transfer.ts";
import {
  LogCapture,
  nextFrame,
  type RawSession,
  rawSession,
  sha256File,
  tempDir,
  testServer,
  writeAll,
  writeRandomFile,
} from "./test_util.ts";

const CHUNK = 1024;

function control(frame: Frame | null): ControlMessage {
  assert.ok(frame?.kind === "control", `expected a control frame`);
  return frame.message;
}

function chunkOf(bytes: Uint8Array, seq: number): Uint8Array {
  return bytes.subarray(seq * CHUNK, (seq + 1) * CHUNK);
}

Deno.test("serve() asks for an overdue chunk at once when the put offers earlyNack, else only after done", async (t) => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  await using server = await testServer(tmp, logs, { chunkSize: CHUNK });
  const count = 40;
  const bytes = crypto.getRandomValues(new Uint8Array(count * CHUNK));
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const lost = 3;
  for (const earlyNack of [true, false]) {
    await t.step(earlyNack ? "earlyNack" : "no earlyNack", async () => {
      using s = await rawSession(server.addr.port);
      const ready = control(
        await s.ask({
          type: "put",
          name: `early-${earlyNack}.bin`,
          size: bytes.length,
          chunkSize: CHUNK,
          mtimeMs: 0,
          maxRetries: 3,
          ...(earlyNack ? { earlyNack } : {}),
        }),
      );
      assert.equal(ready.type, "ready");
      const { transferId } = ready as { transferId: number };
      const sendChunk = (seq: number) =>
        writeAll(s.conn, encodeData(transferId, seq, chunkOf(bytes, seq)));
      const overdueAt = lost + OVERDUE_DISTANCE;
      for (let seq = 0; seq <= overdueAt; seq++) {
        if (seq !== lost) await sendChunk(seq);
      }
      if (earlyNack) {
        assert.deepEqual(control(await nextFrame(s.reader, s.conn)), {
          type: "nack",
          transferId,
          seqs: [lost],
          round: 0,
        });
        await sendChunk(lost);
      }
      for (let seq = overdueAt + 1; seq < count; seq++) await sendChunk(seq);
      const done = { type: "done", transferId, sha256 } as const;
      let reply = control(await s.ask(done));
      if (!earlyNack) {
        assert.deepEqual(reply, {
          type: "nack",
          transferId,
          seqs: [lost],
          round: 1,
        });
        await sendChunk(lost);
        reply = control(await s.ask(done));
      }
      assert.equal(reply.type, "verified");
      assert.equal(
        await sha256File(tmp.join(`srv/early-${earlyNack}.bin`)),
        sha256,
      );
    });
  }
});

Deno.test("serve() asks again for an early-nacked chunk whose repair does not come", async () => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  await using server = await testServer(tmp, logs);
  const chunkSize = 64 * 1024;
  // 40 MiB after the ask: more than any sender can have had in flight.
  const count = OVERDUE_DISTANCE + 16 + (40 * 1024 * 1024) / chunkSize;
  const payload = new Uint8Array(chunkSize);
  using s = await rawSession(server.addr.port);
  const ready = control(
    await s.ask({
      type: "put",
      name: "reask.bin",
      size: count * chunkSize,
      chunkSize,
      mtimeMs: 0,
      maxRetries: 3,
      earlyNack: true,
    }),
  );
  const { transferId } = ready as { transferId: number };
  const sendChunk = (seq: number) =>
    writeAll(s.conn, encodeData(transferId, seq, payload));
  const lost = 3;
  const ask = { type: "nack", transferId, seqs: [lost], round: 0 };
  for (let seq = 0; seq <= lost + OVERDUE_DISTANCE; seq++) {
    if (seq !== lost) await sendChunk(seq);
  }
  assert.deepEqual(control(await nextFrame(s.reader, s.conn)), ask);
  for (let seq = lost + OVERDUE_DISTANCE + 1; seq < count; seq++) {
    await sendChunk(seq);
  }
  assert.deepEqual(control(await nextFrame(s.reader, s.conn)), ask);
});

/** Data frames read until `done`, by sequence number, after `whenSeen` ran once. */
async function chunksUntilDone(
  s: RawSession,
  whenSeen: { seq: number; then: () => Promise<void> },
): Promise<{ seqs: number[]; done: ControlMessage }> {
  const seqs: number[] = [];
  for (let i = 0; i < 10_000; i++) {
    const frame = await nextFrame(s.reader, s.conn);
    if (frame?.kind !== "data") return { seqs, done: control(frame) };
    seqs.push(frame.seq);
    if (frame.seq === whenSeen.seq) await whenSeen.then();
  }
  throw new Error("Cannot read chunks: no done after 10,000 frames");
}

Deno.test("a get server sends early-nacked chunks before done, ignores a stale one, refuses too many", async (t) => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  const chunkSize = 64 * 1024;
  const count = 512;
  await Deno.mkdir(tmp.join("srv"));
  // Far larger than the socket buffers, so the server is mid-file when asked.
  await writeRandomFile(tmp.join("srv/big.bin"), count * chunkSize);
  await using server = await testServer(tmp, logs, { chunkSize });
  const have = new ChunkBitmap(count).toBase64();
  const start = async () => {
    const s = await rawSession(server.addr.port);
    const offer = control(await s.ask({ type: "get", name: "big.bin" }));
    assert.equal(offer.type, "offer");
    assert.equal((offer as { earlyNack?: boolean }).earlyNack, true);
    const { transferId } = offer as { transferId: number };
    await writeAll(s.conn, encodeControl({ type: "ready", transferId, have }));
    return { s, transferId };
  };

  await t.step("served before done; one after done is ignored", async () => {
    const { s, transferId } = await start();
    using _ = s;
    const nack = (seqs: number[]) =>
      writeAll(
        s.conn,
        encodeControl({ type: "nack", transferId, seqs, round: 0 }),
      );
    const { seqs, done } = await chunksUntilDone(s, {
      seq: 20,
      then: () => nack([5]),
    });
    assert.equal(done.type, "done");
    assert.equal(seqs.length, count + 1);
    assert.deepEqual(seqs.filter((seq) => seq === 5), [5, 5]);
    // Sent as if before `done` arrived: the server must not act on it.
    await nack([6]);
    const { sha256 } = done as { sha256: string };
    await writeAll(
      s.conn,
      encodeControl({
        type: "verified",
        transferId,
        sha256,
        bytes: count * chunkSize,
      }),
    );
    const listing = control(await s.ask({ type: "list" }));
    assert.equal(listing.type, "listing");
  });

  await t.step(
    `a chunk asked for early more than ${MAX_EARLY_ASKS} times is a protocol error`,
    async () => {
      const { s, transferId } = await start();
      using _ = s;
      const ask = encodeControl({
        type: "nack",
        transferId,
        seqs: [5],
        round: 0,
      });
      const { seqs, done } = await chunksUntilDone(s, {
        seq: 20,
        then: () =>
          writeAll(
            s.conn,
            Uint8Array.from(
              { length: ask.length * (MAX_EARLY_ASKS + 1) },
              (_, i) => ask[i % ask.length]!,
            ),
          ),
      });
      assert.ok(seqs.length < count, `${seqs.length} chunks arrived`);
      assert.equal(seqs.filter((seq) => seq === 5).length, 1 + MAX_EARLY_ASKS);
      assert.deepEqual(
        { type: done.type, code: (done as { code?: string }).code },
        { type: "error", code: "protocol_error" },
      );
      assert.equal(await nextFrame(s.reader, s.conn), null);
      await logs.waitFor(/asked for more than \d+ times in the first round/);
    },
  );
});

Deno.test("send() and get() with simulated loss, damage and reordering end verified", async () => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  await using server = await testServer(tmp, logs, {
    chunkSize: 16 * 1024,
    simulateErrors: { errorRate: 0.1, seed: 4242 },
  });
  const source = tmp.join("source.bin");
  await writeRandomFile(source, 4 * 1024 * 1024 + 123);
  const log = new Logger("FileTransferClient", { level: "ERROR" });
  const address = { host: "127.0.0.1", port: server.addr.port, log };
  const sent = await send(source, {
    ...address,
    simulator: new ErrorSimulator({ errorRate: 0.1, seed: 99 }),
  });
  assert.ok(sent.retransmittedChunks > 0);
  assert.equal(sent.sha256, await sha256File(source));
  const out = tmp.join("back.bin");
  const back = await get("source.bin", { ...address, out, fsync: false });
  assert.ok(back.retransmittedChunks > 0);
  assert.equal(await sha256File(out), sent.sha256);
});

Deno.test("ChunkStore hashes chunks accepted in any order, keeping at most MAX_AHEAD_BYTES of them", async () => {
  await using tmp = await tempDir();
  const chunkSize = 1024 * 1024;
  const count = MAX_AHEAD_BYTES / chunkSize + 4;
  const bytes = new Uint8Array(count * chunkSize - 1000);
  for (let at = 0; at < bytes.length; at += 65536) {
    crypto.getRandomValues(bytes.subarray(at, at + 65536));
  }
  const claimed = await ChunkStore.claim(tmp.join("out.bin"), {
    name: "out.bin",
    size: bytes.length,
    chunkSize,
    mtimeMs: 0,
  }, { fsync: false });
  assert.ok(claimed.ok);
  const store = claimed.value;
  const released = new Map<number, number>();
  const accepts: Promise<void>[] = [];
  // Last chunk first, and chunk 1 twice: chunk 0 comes last of all.
  const order = [...Array.from({ length: count - 1 }, (_, i) => count - 1 - i)];
  order.push(1, 0);
  for (const seq of order) {
    const payload = bytes.slice(
      seq * chunkSize,
      Math.min(bytes.length, (seq + 1) * chunkSize),
    );
    accepts.push(store.accept(seq, payload, (given) => {
      assert.equal(given, payload);
      released.set(seq, (released.get(seq) ?? 0) + 1);
    }));
  }
  await Promise.all(accepts);
  assert.equal(
    await store.digest(),
    createHash("sha256").update(bytes).digest("hex"),
  );
  await store.finalize();
  assert.deepEqual(
    [...released.entries()].sort(([a], [b]) => a - b),
    Array.from({ length: count }, (_, seq) => [seq, seq === 1 ? 2 : 1]),
  );
});
