/**
 * Sparse files: chunks of zeros travel as frames with no payload and land
 * as holes, both ways, and the file still verifies bit for bit.
 */

import assert from "node:assert/strict";
import { Logger } from "../base/log.ts";
import { get, send } from "../client.ts";
import { serve } from "../server.ts";
import { sha256File, tempDir } from "./test_util.ts";

const MiB = 1024 * 1024;

/** Bytes the file system allocated for `path`. */
async function allocated(path: string): Promise<number> {
  return ((await Deno.stat(path)).blocks ?? 0) * 512;
}

Deno.test("a sparse file travels as almost nothing and lands with its holes, both ways", async () => {
  await using tmp = await tempDir();
  const source = tmp.join("disk.img");
  {
    using file = await Deno.open(source, { write: true, create: true });
    await file.truncate(64 * MiB);
    await file.seek(40 * MiB, Deno.SeekMode.Start);
    await file.write(new TextEncoder().encode("a little data in the middle"));
  }
  const log = new Logger("FileTransferClient", { level: "ERROR" });
  await using server = await serve({
    host: "127.0.0.1",
    port: 0,
    dir: tmp.join("srv"),
    fsync: false,
    log: new Logger("FileTransferServer", { level: "ERROR" }),
  });
  const address = { host: "127.0.0.1", port: server.addr.port, log };
  const sent = await send(source, { ...address, compress: "none" });
  assert.equal(sent.sha256, await sha256File(source));
  assert.ok(sent.wireBytes < 2 * MiB, `${sent.wireBytes} bytes on the wire`);
  const stored = tmp.join("srv/disk.img");
  assert.equal((await Deno.stat(stored)).size, 64 * MiB);
  assert.ok(
    await allocated(stored) <= 2 * MiB,
    "the stored copy keeps its holes",
  );

  const out = tmp.join("back.img");
  const back = await get("disk.img", {
    ...address,
    out,
    compress: "none",
    fsync: false,
  });
  assert.equal(back.sha256, sent.sha256);
  assert.ok(back.wireBytes < 2 * MiB, `${back.wireBytes} bytes on the wire`);
  assert.equal(await sha256File(out), sent.sha256);
  assert.ok(
    await allocated(out) <= 2 * MiB,
    "the copy got back keeps its holes",
  );
});
