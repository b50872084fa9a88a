import assert from "node:assert/strict";
import { FtvClient, hash, Logger, send, serve } from "../mod.ts";
import { LISTING_PAGE_ENTRIES } from "../protocol.ts";
import { tempDir, writeRandomFile } from "./test_util.ts";

const HOST = "127.0.0.1";
const quiet = () => new Logger("FileTransferClient", { level: "ERROR" });

Deno.test("send() stops with the abort reason when its signal aborts mid-transfer, leaving no file", async () => {
  await using tmp = await tempDir();
  const source = tmp.join("big.bin");
  await writeRandomFile(source, 16 * 1024 * 1024);
  await using server = await serve({
    host: HOST,
    port: 0,
    dir: tmp.join("srv"),
    chunkSize: 256 * 1024,
    log: new Logger("FileTransferServer", { level: "ERROR" }),
  });
  const controller = new AbortController();
  const reason = new Error("user pressed stop");
  await assert.rejects(
    send(source, {
      host: HOST,
      port: server.addr.port,
      limitRate: 16 * 1024 * 1024,
      signal: controller.signal,
      log: quiet(),
      onProgress: (event) => {
        if (event.bytes >= event.total / 4) controller.abort(reason);
      },
    }),
    (error) => error === reason,
  );
  await assert.rejects(
    Deno.stat(tmp.join("srv/big.bin")),
    Deno.errors.NotFound,
  );
});

Deno.test("serve() stops when its signal aborts, and hash() matches what send() reports", async () => {
  await using tmp = await tempDir();
  const source = tmp.join("small.bin");
  await writeRandomFile(source, 300_000);
  const controller = new AbortController();
  const server = await serve({
    host: HOST,
    port: 0,
    dir: tmp.join("srv"),
    signal: controller.signal,
    log: new Logger("FileTransferServer", { level: "ERROR" }),
  });
  const result = await send(source, {
    host: HOST,
    port: server.addr.port,
    log: quiet(),
  });
  assert.equal(result.sha256, await hash(source));
  assert.equal(await hash(tmp.join("srv/small.bin")), result.sha256);
  controller.abort();
  await server.finished;
  await assert.rejects(
    Deno.connect({ hostname: HOST, port: server.addr.port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("FtvClient.list() pages through a listing larger than one message", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const count = LISTING_PAGE_ENTRIES + 50;
  await Deno.mkdir(`${dir}/many`, { recursive: true });
  await Promise.all(
    Array.from(
      { length: count },
      (_, i) => Deno.writeTextFile(`${dir}/many/f${i}.txt`, `file ${i}\n`),
    ),
  );
  await using server = await serve({
    host: HOST,
    port: 0,
    dir,
    log: new Logger("FileTransferServer", { level: "ERROR" }),
  });
  using client = await FtvClient.connect({
    host: HOST,
    port: server.addr.port,
    log: quiet(),
  });
  const tree = await client.listTree("many");
  assert.equal(tree.files.length, count);
  assert.equal(new Set(tree.files.map((file) => file.name)).size, count);
  assert.ok(tree.dirs.some((entry) => entry.name === "many"));
});
