/**
 * Hostile peers against an in-process server: each loses its own connection,
 * names from the wire never leave the server's folder, and a well-behaved
 * client is served correctly afterwards.
 */

import assert from "node:assert/strict";
import { encodeControl, type Frame, FtvClient, serve } from "../mod.ts";
import { FrameReader, PROTOCOL_VERSION } from "../protocol.ts";
import {
  exists,
  listDir,
  LogCapture,
  nextFrame,
  readUntilClosed,
  sha256File,
  type TempDir,
  tempDir,
  testServer,
  writeAll,
  writeRandomFile,
} from "./test_util.ts";

const HOST = "127.0.0.1";

function assertErrorFrame(frame: Frame | null | undefined, code: string): void {
  assert.ok(frame, "expected an error frame, got nothing");
  assert.equal(frame.kind, "control");
  assert.equal(frame.message.type, "error");
  assert.equal((frame.message as { code: string }).code, code);
}

/** A well-behaved client sends a file and gets it back verified. */
async function assertStillServes(
  port: number,
  tmp: TempDir,
  logs: LogCapture,
): Promise<void> {
  const file = tmp.join("good.bin");
  if (!(await Deno.stat(file).catch(() => null))) {
    await writeRandomFile(file, 40 * 1024 + 3);
  }
  const expected = await sha256File(file);
  using client = await FtvClient.connect({
    host: HOST,
    port,
    timeoutMs: 5000,
    log: logs.logger("FileTransferClient"),
  });
  const sent = await client.send(file);
  assert.equal(sent.sha256, expected);
  const out = tmp.join("good.copy");
  await Deno.remove(out).catch(() => undefined);
  const got = await client.get("good.bin", { out });
  assert.equal(got.sha256, expected);
  assert.equal(await sha256File(out), expected);
}

/** Opens a raw socket to the server. */
function connectRaw(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: HOST, port });
}

const HELLO = encodeControl({
  type: "hello",
  version: PROTOCOL_VERSION,
  agent: "hostile-test",
});

Deno.test("serve() closes hostile connections and keeps serving others", async (t) => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  await using server = await testServer(tmp, logs, {
    chunkSize: 4096,
  });
  const { port } = server.addr;

  const cases: {
    name: string;
    bytes: Uint8Array;
    /** Error code the server may send before closing. */
    code: string;
    /** When set, the server must send this error frame. */
    mustReply?: boolean;
  }[] = [
    {
      name: "garbage bytes",
      bytes: new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
      code: "protocol_error",
    },
    {
      name: "a control length prefix of 0xFFFFFFFF",
      bytes: new Uint8Array([0xff, 0xff, 0xff, 0xff, 1]),
      code: "protocol_error",
    },
    {
      name: "a data length prefix of 0xFFFFFFFF after hello",
      bytes: new Uint8Array([...HELLO, 0xff, 0xff, 0xff, 0xff, 2]),
      code: "protocol_error",
    },
    {
      name: "a hello with version 99",
      bytes: encodeControl({ type: "hello", version: 99, agent: "future" }),
      code: "unsupported_version",
      mustReply: true,
    },
  ];
  for (const c of cases) {
    await t.step(`${c.name}: connection closed`, async () => {
      using conn = await connectRaw(port);
      await writeAll(conn, c.bytes);
      const { frames } = await readUntilClosed(conn);
      // After a valid hello the server's own hello comes first.
      const rest = frames[0]?.kind === "control" &&
          frames[0].message.type === "hello"
        ? frames.slice(1)
        : frames;
      assert.ok(rest.length <= 1, `got ${rest.length} frames`);
      if (c.mustReply || rest.length === 1) assertErrorFrame(rest[0], c.code);
      await assertStillServes(port, tmp, logs);
    });
  }

  await t.step(
    "half a frame then end of stream: connection closed",
    async () => {
      using conn = await connectRaw(port);
      await writeAll(conn, HELLO.subarray(0, 7));
      await conn.closeWrite();
      const { frames } = await readUntilClosed(conn);
      assert.ok(frames.length <= 1, `got ${frames.length} frames`);
      if (frames.length === 1) assertErrorFrame(frames[0], "protocol_error");
      await assertStillServes(port, tmp, logs);
    },
  );

  await t.step(
    "half a frame then disconnect: server drops the session",
    async () => {
      const conn = await connectRaw(port);
      const { port: local } = conn.localAddr as Deno.NetAddr;
      try {
        await writeAll(conn, HELLO.subarray(0, HELLO.length - 3));
      } finally {
        conn.close();
      }
      // The server logs why it dropped this very connection.
      await logs.waitFor(
        new RegExp(`Closing connection with 127\\.0\\.0\\.1:${local}: `),
      );
      await assertStillServes(port, tmp, logs);
    },
  );

  await t.step("nothing but the good file was stored", async () => {
    assert.deepEqual(
      (await listDir(tmp.join("srv"))).filter((n) => n !== ".ftv"),
      ["good.bin"],
    );
  });
});

Deno.test("serve() refuses names from the wire that would leave its folder", async (t) => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  const dir = tmp.join("srv");
  await using server = await serve({
    host: HOST,
    port: 0,
    dir,
    log: logs.logger("FileTransferServer"),
  });
  await Deno.writeTextFile(tmp.join("secret"), "outside the server folder\n");
  const outsideBefore = await listDir(tmp.path);
  const etcBefore = new Set<string>();
  for (const path of ["/etc/x", "/etc/x.ftv-part", "/etc/x.ftv-state"]) {
    if (await exists(path)) etcBefore.add(path);
  }

  using conn = await connectRaw(server.addr.port);
  const reader = new FrameReader(conn);
  await writeAll(conn, HELLO);
  const hello = await nextFrame(reader, conn);
  assert.equal(hello?.kind === "control" && hello.message.type, "hello");

  const names = ["../evil", "/etc/x", "a//b", "a\u0000b", "..", "../secret"];
  try {
    for (const name of names) {
      await t.step(`put ${JSON.stringify(name)} gets bad_name`, async () => {
        await writeAll(
          conn,
          encodeControl({
            type: "put",
            name,
            size: 5,
            chunkSize: 1024,
            mtimeMs: 0,
            maxRetries: 0,
          }),
        );
        assertErrorFrame(await nextFrame(reader, conn), "bad_name");
      });
    }
    await t.step('get "../secret" gets bad_name', async () => {
      await writeAll(conn, encodeControl({ type: "get", name: "../secret" }));
      assertErrorFrame(await nextFrame(reader, conn), "bad_name");
    });
    await t.step("the session goes on and lists nothing", async () => {
      await writeAll(conn, encodeControl({ type: "list" }));
      const frame = await nextFrame(reader, conn);
      assert.ok(frame?.kind === "control");
      assert.deepEqual(frame.message, { type: "listing", files: [] });
    });
    await t.step(
      "nothing was written outside or inside the folder",
      async () => {
        assert.deepEqual(await listDir(tmp.path), outsideBefore);
        assert.equal(
          await Deno.readTextFile(tmp.join("secret")),
          "outside the server folder\n",
        );
        assert.deepEqual(
          (await listDir(dir)).filter((n) => n !== ".ftv"),
          [],
        );
        for (const path of ["/etc/x", "/etc/x.ftv-part", "/etc/x.ftv-state"]) {
          assert.equal(await exists(path), etcBefore.has(path), path);
        }
      },
    );
  } finally {
    // A server that wrongly accepted "/etc/x" must not leave litter behind.
    for (const path of ["/etc/x", "/etc/x.ftv-part", "/etc/x.ftv-state"]) {
      if (!etcBefore.has(path)) await Deno.remove(path).catch(() => {});
    }
  }
});
