/**
 * The HTTP front door with the real clients people have: curl, wget and
 * `fetch` against a real `ftv server --http` process, on the same store
 * ftv/1 serves.
 */

import assert from "node:assert/strict";
import {
  curl,
  headerOf,
  httpServer,
  putFile,
  reprDigestOf,
  run,
  statusOf,
} from "./http_util.ts";
import {
  exists,
  listDir,
  runCli,
  sha256File,
  spawnProxy,
  tempDir,
  writeRandomFile,
} from "./test_util.ts";

const MiB = 1024 * 1024;

Deno.test("curl -T stores a file verified, and GET gives it back with its validators", async () => {
  await using tmp = await tempDir();
  const source = tmp.join("photo.jpg");
  await writeRandomFile(source, 3 * MiB + 17);
  const sha = await sha256File(source);
  await using srv = await httpServer(tmp.join("srv"), [
    "--chunk-size",
    "65536",
  ]);
  const put = await curl(
    "-D",
    "-",
    "-o",
    "/dev/null",
    "-w",
    "\n%{http_code}",
    "-T",
    source,
    `${srv.base}/files/trip/photo.jpg`,
  );
  assert.equal(statusOf(put), 201, put.stdout + put.stderr);
  assert.equal(headerOf(put.stdout, "repr-digest"), reprDigestOf(sha));
  assert.equal(await sha256File(tmp.join("srv", "trip", "photo.jpg")), sha);
  assert.deepEqual(await listDir(tmp.join("srv", "trip")), ["photo.jpg"]);

  const out = tmp.join("back.jpg");
  const get = await curl(
    "-D",
    "-",
    "-o",
    out,
    "-w",
    "\n%{http_code}",
    `${srv.base}/files/trip/photo.jpg`,
  );
  assert.equal(statusOf(get), 200);
  assert.equal(await sha256File(out), sha);
  assert.equal(headerOf(get.stdout, "etag"), `"${sha}"`);
  assert.equal(headerOf(get.stdout, "repr-digest"), reprDigestOf(sha));
  assert.equal(headerOf(get.stdout, "content-type"), "image/jpeg");
  assert.equal(headerOf(get.stdout, "accept-ranges"), "bytes");
  assert.ok(headerOf(get.stdout, "last-modified"));
  assert.match(
    headerOf(get.stdout, "content-disposition")!,
    /filename\*=UTF-8''photo\.jpg/,
  );

  const head = await curl("-I", `${srv.base}/files/trip/photo.jpg`);
  assert.equal(headerOf(head.stdout, "content-length"), String(3 * MiB + 17));

  // The same store as ftv/1: `ftv list --json` and /api/list agree.
  const listed = await runCli([
    "list",
    "--json",
    "--host",
    "127.0.0.1",
    "--port",
    String(srv.server.port),
  ]);
  const api = await (await fetch(`${srv.base}/api/list`)).json();
  assert.deepEqual(api, JSON.parse(listed.stdout));
  assert.equal(api.files[0].sha256, sha);
});

Deno.test("PUT with a wrong Repr-Digest is refused with both digests and stores nothing", async () => {
  await using tmp = await tempDir();
  const source = tmp.join("a.bin");
  await writeRandomFile(source, 200_000);
  const sha = await sha256File(source);
  await using srv = await httpServer(tmp.join("srv"));
  const wrong = "0".repeat(64);
  const put = await curl(
    "-w",
    "\n%{http_code}",
    "-H",
    `Repr-Digest: ${reprDigestOf(wrong)}`,
    "-T",
    source,
    `${srv.base}/files/a.bin`,
  );
  assert.equal(statusOf(put), 400);
  const problem = JSON.parse(put.stdout.trim().split("\n")[0]!);
  assert.equal(problem.code, "digest_mismatch");
  assert.equal(problem.expected, wrong);
  assert.equal(problem.actual, sha);
  assert.deepEqual(
    (await listDir(tmp.join("srv"))).filter((name) => name !== ".ftv"),
    [],
  );

  const right = await curl(
    "-w",
    "\n%{http_code}",
    "-H",
    `Content-Digest: ${reprDigestOf(sha)}`,
    "-T",
    source,
    `${srv.base}/files/a.bin`,
  );
  assert.equal(statusOf(right), 201);
  assert.equal(await sha256File(tmp.join("srv", "a.bin")), sha);
});

Deno.test("ranges, conditionals and 416 answer as RFC 9110 says", async () => {
  await using tmp = await tempDir();
  const source = tmp.join("r.bin");
  await writeRandomFile(source, 100_000);
  const bytes = await Deno.readFile(source);
  const sha = await sha256File(source);
  await using srv = await httpServer(tmp.join("srv"));
  assert.equal(await putFile(srv.base, "r.bin", source), 201);
  const url = `${srv.base}/files/r.bin`;

  const part = await fetch(url, { headers: { Range: "bytes=1000-1999" } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get("content-range"), "bytes 1000-1999/100000");
  assert.deepEqual(
    new Uint8Array(await part.arrayBuffer()),
    bytes.subarray(1000, 2000),
  );

  const suffix = await fetch(url, { headers: { Range: "bytes=-10" } });
  assert.deepEqual(
    new Uint8Array(await suffix.arrayBuffer()),
    bytes.subarray(99_990),
  );

  const past = await fetch(url, { headers: { Range: "bytes=100000-" } });
  assert.equal(past.status, 416);
  assert.equal(past.headers.get("content-range"), "bytes */100000");
  await past.body?.cancel();

  const same = await fetch(url, { headers: { "If-None-Match": `"${sha}"` } });
  assert.equal(same.status, 304);
  await same.body?.cancel();

  const stale = await fetch(url, {
    headers: { Range: "bytes=0-9", "If-Range": '"other"' },
  });
  assert.equal(
    stale.status,
    200,
    "a range whose If-Range no longer matches gets the whole file",
  );
  assert.equal((await stale.arrayBuffer()).byteLength, 100_000);

  const dated = await fetch(url, {
    headers: {
      Range: "bytes=0-9",
      "If-Range": part.headers.get("last-modified")!,
    },
  });
  assert.equal(dated.status, 206);
  await dated.body?.cancel();

  // curl -C - of a file that is already complete: a 416 it takes as done.
  const out = tmp.join("done.bin");
  await Deno.copyFile(source, out);
  const again = await curl("-C", "-", "-o", out, url);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(await sha256File(out), sha);
});

Deno.test("curl -C - resumes a download the proxy cut, and wget -c finishes one", async () => {
  await using tmp = await tempDir();
  const source = tmp.join("big.bin");
  await writeRandomFile(source, 3 * MiB);
  const sha = await sha256File(source);
  await using srv = await httpServer(tmp.join("srv"));
  assert.equal(await putFile(srv.base, "big.bin", source), 201);
  await using proxy = await spawnProxy(srv.port, ["--cut-after", "700000"]);
  const url = `http://127.0.0.1:${proxy.port}/files/big.bin`;

  const out = tmp.join("curl.bin");
  const first = await curl("-o", out, url);
  assert.notEqual(first.code, 0, "the proxy cuts the first download");
  const cutAt = (await Deno.stat(out)).size;
  assert.ok(cutAt > 0 && cutAt < 3 * MiB, `cut at ${cutAt}`);
  let tries = 1;
  for (; tries < 20; tries++) {
    if ((await curl("-C", "-", "-o", out, url)).code === 0) break;
  }
  assert.ok(tries > 1 && tries < 20, `${tries} tries`);
  assert.equal(await sha256File(out), sha);

  const wgetOut = tmp.join("wget.bin");
  await Deno.writeFile(
    wgetOut,
    (await Deno.readFile(source)).subarray(0, 123_456),
  );
  const wget = await run("wget", [
    "-c",
    "-q",
    "--tries=20",
    "--waitretry=0",
    "-O",
    wgetOut,
    url,
  ]);
  assert.equal(wget.code, 0, wget.stderr);
  assert.equal(await sha256File(wgetOut), sha);
});

Deno.test("bit rot on disk without parity makes the download fail, then the file is refused as damaged", async () => {
  await using tmp = await tempDir();
  const source = tmp.join("rot.bin");
  await writeRandomFile(source, 2 * MiB + 5);
  // With parity (the default) the rotted chunk is repaired before it is
  // sent: tests/parity_store_test.ts.
  await using srv = await httpServer(tmp.join("srv"), ["--parity", "off"]);
  assert.equal(await putFile(srv.base, "rot.bin", source), 201);
  const stored = tmp.join("srv", "rot.bin");
  const before = await Deno.stat(stored);
  {
    using file = await Deno.open(stored, { read: true, write: true });
    await file.seek(1_500_000, Deno.SeekMode.Start);
    await file.write(new Uint8Array([0x55, 0xaa]));
  }
  await Deno.utime(stored, before.atime!, before.mtime!);

  const out = tmp.join("got.bin");
  const cut = await curl("-o", out, `${srv.base}/files/rot.bin`);
  assert.notEqual(cut.code, 0, "the download must not end cleanly");
  assert.ok(
    (await Deno.stat(out)).size < 2 * MiB + 5,
    "the last piece is held back",
  );
  const refused = await curl(
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    `${srv.base}/files/rot.bin`,
  );
  assert.equal(statusOf(refused), 410);
  assert.match(srv.server.log(), /ERROR - Stopped sending rot\.bin/);
  const range = await curl(
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "-r",
    "0-9",
    `${srv.base}/files/rot.bin`,
  );
  assert.equal(statusOf(range), 410);
});

/** Paths that must never reach a file outside the store, nor inside it. */
const HOSTILE = [
  "/files/..",
  "/files/%2e%2e",
  "/files/%2E%2E/evil",
  "/files/../evil",
  "/files/..%2Fevil",
  "/files/..%2F..%2F..%2Fetc%2Fpasswd",
  "/files/a/../../evil",
  "/files/a%2F..%2F..%2Fevil",
  "/files/%2Fetc%2Fpasswd",
  "/files//etc/passwd",
  "/files/a%5Cb",
  "/files/..%5C..%5Cevil",
  "/files/%00",
  "/files/a%00b",
  "/files/a%0Ab",
  "/files/%1b%5b31m",
  "/files/.ftv",
  "/files/.ftv/digests.json",
  "/files/x.ftv-part",
  "/files/x.ftv-state",
  "/files/C:evil",
  "/files/a/./b",
  "/files/a//b",
  "/files/%E9",
  "/files/%zz",
  "/files/%c0%ae%c0%ae/evil",
  `/files/${"a".repeat(300)}`,
  `/files/${"d/".repeat(70)}x`,
];

Deno.test("hostile URL paths are refused with 400 and nothing is written anywhere", async () => {
  await using tmp = await tempDir();
  await using outside = await tempDir();
  const source = outside.join("payload");
  await Deno.writeTextFile(source, "payload");
  await using srv = await httpServer(tmp.join("srv"));
  for (const path of HOSTILE) {
    for (const method of ["PUT", "GET"]) {
      // Not -T: curl would rewrite a URL ending in "/.." itself.
      const args = method === "PUT"
        ? ["-X", "PUT", "--data-binary", `@${source}`]
        : [];
      const result = await curl(
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        ...args,
        `${srv.base}${path}`,
      );
      assert.equal(statusOf(result), 400, `${method} ${path}`);
    }
  }
  assert.deepEqual(await listDir(tmp.path), ["srv"]);
  assert.deepEqual(
    (await listDir(tmp.join("srv"))).filter((name) => name !== ".ftv"),
    [],
  );
  assert.ok(!(await exists(tmp.join("evil"))));
  assert.deepEqual(await listDir(outside.path), ["payload"]);
});

Deno.test("a token is required as Authorization: Bearer, and wrong ones are refused", async () => {
  await using tmp = await tempDir();
  await using srv = await httpServer(tmp.join("srv"), ["--token", "s3cret"]);
  const none = await fetch(`${srv.base}/api/list`);
  assert.equal(none.status, 401);
  assert.equal(none.headers.get("www-authenticate"), 'Bearer realm="ftv"');
  await none.body?.cancel();
  const wrong = await fetch(`${srv.base}/api/list`, {
    headers: { Authorization: "Bearer nope" },
  });
  assert.equal(wrong.status, 401);
  await wrong.body?.cancel();
  const right = await fetch(`${srv.base}/api/list`, {
    headers: { Authorization: "Bearer s3cret" },
  });
  assert.equal(right.status, 200);
  assert.deepEqual(await right.json(), { files: [] });
});
