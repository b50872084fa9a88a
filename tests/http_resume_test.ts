/**
 * Resumable HTTP uploads with the real tus-js-client 4.3, in tus 1.0 and
 * as the IETF draft (`ietf-draft-05`): cut by the fault proxy, across a
 * server killed with SIGKILL and restarted, with per-PATCH checksums, a
 * concurrent PATCH, and termination.
 */

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { tusUpload } from "../tools/tus_client.ts";
import { httpServer, tus } from "./http_util.ts";
import {
  exists,
  pollUntil,
  sha256File,
  spawnProxy,
  tempDir,
  unusedPort,
  writeRandomFile,
} from "./test_util.ts";

const MiB = 1024 * 1024;

for (const protocol of ["tus-v1", "ietf-draft-05"] as const) {
  Deno.test(`tus-js-client (${protocol}) resumes an upload the proxy keeps cutting`, async () => {
    await using tmp = await tempDir();
    const source = tmp.join("video.bin");
    await writeRandomFile(source, 3 * MiB + 1234);
    const sha = await sha256File(source);
    await using srv = await httpServer(tmp.join("srv"), [
      "--chunk-size",
      "65536",
    ]);
    await using proxy = await spawnProxy(srv.port, ["--cut-after", "800000"]);
    const offsets: number[] = [];
    await tusUpload(source, {
      endpoint: `http://127.0.0.1:${proxy.port}/files/`,
      name: "clips/video.bin",
      protocol,
      retryDelays: Array(30).fill(0),
      onRequest: (method, header) => {
        if (method === "PATCH") offsets.push(Number(header("Upload-Offset")));
      },
    });
    assert.equal(await sha256File(tmp.join("srv", "clips", "video.bin")), sha);
    assert.ok(offsets.length >= 3, `PATCHes at ${offsets}`);
    assert.ok(
      offsets.some((offset) => offset % 65536 !== 0),
      `a PATCH resumed mid-chunk (from the tail): ${offsets}`,
    );
    assert.deepEqual(
      await Array.fromAsync(Deno.readDir(tmp.join("srv", ".ftv", "uploads"))),
      [],
    );
  });
}

Deno.test("a tus upload goes on across a server killed with SIGKILL and restarted", async () => {
  await using tmp = await tempDir();
  const source = tmp.join("disk.img");
  await writeRandomFile(source, 4 * MiB);
  const sha = await sha256File(source);
  const port = unusedPort();
  const args = ["--http", String(port), "--chunk-size", "65536"];
  const first = await httpServer(tmp.join("srv"), args);
  const stopped = await tusUpload(source, {
    endpoint: `${first.base}/files/`,
    name: "disk.img",
    chunkSize: 300_000,
    stopAfter: MiB,
  });
  assert.ok(stopped.stoppedAt! >= MiB);
  first.server.kill("SIGKILL");
  await first.server.exited;
  const url = stopped.url;

  await using _second = await httpServer(tmp.join("srv"), args);
  const head = await fetch(url, {
    method: "HEAD",
    headers: { "Tus-Resumable": "1.0.0" },
  });
  const held = Number(head.headers.get("upload-offset"));
  assert.equal(head.status, 200);
  assert.ok(held >= MiB && held < 4 * MiB, `held ${held}`);
  const offsets: number[] = [];
  await tusUpload(source, {
    uploadUrl: url,
    name: "disk.img",
    chunkSize: 300_000,
    onRequest: (method, header) => {
      if (method === "PATCH") offsets.push(Number(header("Upload-Offset")));
    },
  });
  assert.equal(
    offsets[0],
    held,
    "the first PATCH after the restart starts at the offset held",
  );
  assert.equal(await sha256File(tmp.join("srv", "disk.img")), sha);
});

function checksum(algorithm: string, bytes: Uint8Array): string {
  return `${algorithm} ${createHash(algorithm).update(bytes).digest("base64")}`;
}

Deno.test("Upload-Checksum: a PATCH whose bytes do not match gets 460 and counts for nothing", async () => {
  await using tmp = await tempDir();
  await using srv = await httpServer(tmp.join("srv"), [
    "--chunk-size",
    "65536",
  ]);
  const bytes = new Uint8Array(randomBytes(100_000));
  const created = await tus(`${srv.base}/files/`, "POST", {
    "Upload-Length": "100000",
    "Upload-Metadata": `filename ${btoa("sum.bin")}`,
  });
  assert.equal(created.status, 201);
  const url = new URL(created.headers.get("location")!, srv.base).href;
  const patch = (from: number, to: number, sum: string) =>
    tus(url, "PATCH", {
      "Content-Type": "application/offset+octet-stream",
      "Upload-Offset": String(from),
      "Upload-Checksum": sum,
    }, bytes.slice(from, to));

  const bad = await patch(
    0,
    70_000,
    checksum("sha256", bytes.subarray(1, 70_001)),
  );
  assert.equal(bad.status, 460);
  assert.equal((await bad.json()).code, "checksum_mismatch");
  const head = await tus(url, "HEAD");
  assert.equal(
    head.headers.get("upload-offset"),
    "0",
    "nothing of the bad PATCH counts",
  );

  const good = await patch(
    0,
    70_000,
    checksum("sha256", bytes.subarray(0, 70_000)),
  );
  assert.equal(good.status, 204);
  assert.equal(good.headers.get("upload-offset"), "70000");
  const badTail = await patch(
    70_000,
    100_000,
    checksum("sha1", new Uint8Array(30_000)),
  );
  assert.equal(badTail.status, 460);
  await badTail.body?.cancel();
  const rest = await patch(
    70_000,
    100_000,
    checksum("sha1", bytes.subarray(70_000)),
  );
  assert.equal(rest.status, 204);
  const sha = createHash("sha256").update(bytes).digest();
  assert.equal(
    rest.headers.get("repr-digest"),
    `sha-256=:${sha.toString("base64")}:`,
  );
  assert.equal(
    await sha256File(tmp.join("srv", "sum.bin")),
    sha.toString("hex"),
  );
});

Deno.test("a PATCH while another writes the same upload gets 423; DELETE removes it all", async () => {
  await using tmp = await tempDir();
  await using srv = await httpServer(tmp.join("srv"));
  const created = await tus(`${srv.base}/files/`, "POST", {
    "Upload-Length": "1000000",
    "Upload-Metadata": `filename ${btoa("slow.bin")}`,
  });
  const url = new URL(created.headers.get("location")!, srv.base).href;
  // A first HEAD claims the part file, so the PATCH below never meets a
  // HEAD still claiming it.
  assert.equal((await tus(url, "HEAD")).status, 200);
  const { promise: release, resolve } = Promise.withResolvers<void>();
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(new Uint8Array(1000));
      await release;
      controller.close();
    },
  });
  const first = fetch(url, {
    method: "PATCH",
    headers: {
      "Tus-Resumable": "1.0.0",
      "Content-Type": "application/offset+octet-stream",
      "Upload-Offset": "0",
    },
    body,
  });
  await pollUntil(async () => {
    const head = await tus(url, "HEAD");
    return head.status === 423;
  }, { what: "the first PATCH to hold the upload" });
  const second = await tus(url, "PATCH", {
    "Content-Type": "application/offset+octet-stream",
    "Upload-Offset": "0",
  }, new Uint8Array(10));
  assert.equal(second.status, 423);
  await second.body?.cancel();
  resolve();
  const done = await first;
  assert.equal(done.status, 204);
  assert.equal(done.headers.get("upload-offset"), "1000");

  assert.ok(await exists(tmp.join("srv", "slow.bin.ftv-part")));
  const deleted = await tus(url, "DELETE");
  assert.equal(deleted.status, 204);
  assert.ok(!(await exists(tmp.join("srv", "slow.bin.ftv-part"))));
  const gone = await tus(url, "HEAD");
  assert.equal(gone.status, 404);
});

Deno.test("the IETF draft: a PATCH at the wrong offset gets 409 with the offset held", async () => {
  await using tmp = await tempDir();
  await using srv = await httpServer(tmp.join("srv"));
  const draft = { "Upload-Draft-Interop-Version": "6" };
  const created = await fetch(`${srv.base}/files/`, {
    method: "POST",
    headers: {
      ...draft,
      "Upload-Complete": "?0",
      "Upload-Length": "10",
      "Content-Disposition": 'attachment; filename="d.txt"',
    },
  });
  assert.equal(created.status, 201);
  assert.equal(created.headers.get("upload-offset"), "0");
  const url = new URL(created.headers.get("location")!, srv.base).href;
  const wrong = await fetch(url, {
    method: "PATCH",
    headers: {
      ...draft,
      "Upload-Complete": "?1",
      "Upload-Offset": "5",
      "Content-Type": "application/partial-upload",
    },
    body: "01234",
  });
  assert.equal(wrong.status, 409);
  const problem = await wrong.json();
  assert.equal(problem["expected-offset"], 0);
  assert.equal(problem["provided-offset"], 5);
  const right = await fetch(url, {
    method: "PATCH",
    headers: {
      ...draft,
      "Upload-Complete": "?1",
      "Upload-Offset": "0",
      "Content-Type": "application/partial-upload",
    },
    body: "0123456789",
  });
  assert.equal(right.status, 204);
  assert.equal(right.headers.get("upload-complete"), "?1");
  assert.equal(await Deno.readTextFile(tmp.join("srv", "d.txt")), "0123456789");
});
