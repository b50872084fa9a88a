/**
 * What the HTTP front door adds for the web page, without a browser: the
 * page and its files served from the module with a strict policy and no
 * token, `/api/info`, the whole-file `Repr-Digest` a browser sends with
 * the PATCH that completes an upload, and download links signed with the
 * token.
 */

import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { httpServer, reprDigestOf, tus } from "./http_util.ts";
import { exists, listDir, sha256File, tempDir } from "./test_util.ts";

Deno.test("the page, its files and /api/info are served without the token", async () => {
  await using tmp = await tempDir();
  await using srv = await httpServer(tmp.join("srv"), ["--token", "s3cret"]);
  const page = await fetch(`${srv.base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type")!, /^text\/html/);
  assert.match(
    page.headers.get("content-security-policy")!,
    /default-src 'none'.*script-src 'self' 'wasm-unsafe-eval'/,
  );
  assert.equal(page.headers.get("referrer-policy"), "no-referrer");
  const html = await page.text();
  assert.match(html, /<script type="module" src="\/web\/app.js">/);
  assert.doesNotMatch(html, /https?:\/\//, "nothing loads from elsewhere");

  for (const path of ["/web/app.js", "/web/hash_worker.js", "/web/style.css"]) {
    const asset = await fetch(`${srv.base}${path}`);
    assert.equal(asset.status, 200, path);
    const body = await asset.text();
    assert.ok(body.length > 100, path);
    const etag = asset.headers.get("etag")!;
    const again = await fetch(`${srv.base}${path}`, {
      headers: { "If-None-Match": etag },
    });
    assert.equal(again.status, 304);
    await again.body?.cancel();
  }
  const info = await (await fetch(`${srv.base}/api/info`)).json();
  assert.equal(info.name, "ftv");
  assert.equal(info.token, true);
  assert.equal(typeof info.version, "string");

  const post = await fetch(`${srv.base}/`, { method: "POST", body: "x" });
  assert.equal(post.status, 405);
  await post.body?.cancel();
  const listing = await fetch(`${srv.base}/api/list`);
  assert.equal(listing.status, 401, "the store itself still needs the token");
  await listing.body?.cancel();
});

Deno.test("a Repr-Digest on the PATCH that completes a tus upload is checked before the file takes its name", async () => {
  await using tmp = await tempDir();
  await using srv = await httpServer(tmp.join("srv"), [
    "--chunk-size",
    "65536",
  ]);
  const bytes = new Uint8Array(randomBytes(200_000));
  const sha = createHash("sha256").update(bytes).digest("hex");
  const upload = async (digest: string) => {
    const created = await tus(`${srv.base}/files/`, "POST", {
      "Upload-Length": String(bytes.length),
      "Upload-Metadata": `filename ${btoa("page.bin")}`,
    });
    assert.equal(created.status, 201);
    const url = new URL(created.headers.get("location")!, srv.base).href;
    const patch = (from: number, to: number, extra = {}) =>
      tus(url, "PATCH", {
        "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": String(from),
        ...extra,
      }, bytes.slice(from, to));
    const first = await patch(0, 120_000, {
      "Repr-Digest": reprDigestOf(digest),
    });
    assert.equal(first.status, 204, "a PATCH that does not complete goes on");
    return await patch(120_000, bytes.length, {
      "Repr-Digest": reprDigestOf(digest),
    });
  };

  const wrong = "ab".repeat(32);
  const refused = await upload(wrong);
  assert.equal(refused.status, 400);
  const problem = await refused.json();
  assert.equal(problem.code, "digest_mismatch");
  assert.equal(problem.expected, wrong);
  assert.equal(problem.actual, sha);
  assert.deepEqual(
    (await listDir(tmp.join("srv"))).filter((name) => name !== ".ftv"),
    [],
    "nothing took the name, no part file is left",
  );

  const stored = await upload(sha);
  assert.equal(stored.status, 204);
  assert.equal(stored.headers.get("repr-digest"), reprDigestOf(sha));
  assert.equal(await sha256File(tmp.join("srv", "page.bin")), sha);
});

Deno.test("with digest-follows, an upload holding every byte waits unnamed for its digest, across a restart; a wrong one stores nothing", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const args = ["--chunk-size", "65536"];
  const bytes = new Uint8Array(randomBytes(200_000 + 7));
  const sha = createHash("sha256").update(bytes).digest("hex");
  const metadata = (follows: string) =>
    `filename ${btoa("page.bin")},digest-follows ${btoa(follows)}`;
  /** Creates the upload and sends every byte with no digest: its path. */
  const sendAll = async (base: string) => {
    const created = await tus(`${base}/files/`, "POST", {
      "Upload-Length": String(bytes.length),
      "Upload-Metadata": metadata("sha-256"),
    });
    assert.equal(created.status, 201);
    const path = created.headers.get("location")!;
    const sent = await tus(`${base}${path}`, "PATCH", {
      "Content-Type": "application/offset+octet-stream",
      "Upload-Offset": "0",
    }, bytes);
    assert.equal(sent.status, 204);
    assert.equal(sent.headers.get("upload-offset"), String(bytes.length));
    assert.equal(sent.headers.get("repr-digest"), null);
    return path;
  };
  const digestRequest = (base: string, path: string, digest: string) =>
    tus(`${base}${path}`, "PATCH", {
      "Content-Type": "application/offset+octet-stream",
      "Upload-Offset": String(bytes.length),
      "Repr-Digest": reprDigestOf(digest),
    }, new Uint8Array(0));

  let held: string;
  {
    await using first = await httpServer(dir, args);
    const refused = await tus(`${first.base}/files/`, "POST", {
      "Upload-Length": "10",
      "Upload-Metadata": metadata("md5"),
    });
    assert.equal(refused.status, 400);
    await refused.body?.cancel();
    held = await sendAll(first.base);
    assert.equal(await exists(`${dir}/page.bin`), false, "no name yet");
  }
  await using srv = await httpServer(dir, args);
  const head = await tus(`${srv.base}${held}`, "HEAD");
  assert.equal(head.headers.get("upload-offset"), String(bytes.length));
  const wrong = await digestRequest(srv.base, held, "cd".repeat(32));
  assert.equal(wrong.status, 400);
  assert.equal((await wrong.json()).code, "digest_mismatch");
  assert.deepEqual(
    (await listDir(dir)).filter((name) => name !== ".ftv"),
    [],
    "nothing took the name, no part file is left",
  );

  const path = await sendAll(srv.base);
  const named = await digestRequest(srv.base, path, sha);
  assert.equal(named.status, 204);
  assert.equal(named.headers.get("repr-digest"), reprDigestOf(sha));
  assert.equal(await sha256File(`${dir}/page.bin`), sha);
});

Deno.test("a download link signed with the token works for its file until it expires, and for nothing else", async () => {
  await using tmp = await tempDir();
  const token = "t0ken-for-links";
  await using srv = await httpServer(tmp.join("srv"), ["--token", token]);
  const bytes = new Uint8Array(randomBytes(50_000));
  const put = await fetch(`${srv.base}/files/docs/a b.bin`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${token}` },
    body: bytes,
  });
  assert.equal(put.status, 201);
  await put.body?.cancel();
  const sign = (name: string, exp: number, key = token) =>
    createHmac("sha256", key).update(`ftv-link\n${exp}\n${name}`).digest(
      "hex",
    );
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const link = (name: string, e: number, sig: string) =>
    `${srv.base}/files/${
      name.split("/").map(encodeURIComponent).join("/")
    }?exp=${e}&sig=${sig}`;

  const good = await fetch(
    link("docs/a b.bin", exp, sign("docs/a b.bin", exp)),
  );
  assert.equal(good.status, 200);
  assert.deepEqual(new Uint8Array(await good.arrayBuffer()), bytes);
  const ranged = await fetch(
    link("docs/a b.bin", exp, sign("docs/a b.bin", exp)),
    { headers: { Range: "bytes=100-" } },
  );
  assert.equal(ranged.status, 206, "the browser can resume it");
  await ranged.body?.cancel();

  const upload = await fetch(
    link("docs/a b.bin", exp, sign("docs/a b.bin", exp)),
    { method: "PUT", body: "x" },
  );
  assert.equal(upload.status, 401, "a link never allows a write");
  await upload.body?.cancel();

  // Each refusal pauses the next request from this address (1 s, doubling).
  const past = Math.floor(Date.now() / 1000) - 1;
  const refusals = [
    link("docs/a b.bin", exp, sign("docs/a b.bin", exp, "other")),
    link("docs/a b.bin", past, sign("docs/a b.bin", past)),
    link("docs/other.bin", exp, sign("docs/a b.bin", exp)),
  ];
  for (const url of refusals) {
    const response = await fetch(url);
    assert.equal(response.status, 401, url);
    assert.match((await response.json()).detail, /signature/);
  }
});
