/**
 * Bit rot: a stored file whose bytes change on disk while its size and
 * mtime stay the same. The server must notice (from a client's failed
 * download, or the store check), list the file as damaged, refuse to serve
 * it as verified, and take a re-send as the repair.
 */

import assert from "node:assert/strict";
import {
  runCli,
  sha256File,
  spawnServer,
  type TempDir,
  tempDir,
  writeRandomFile,
} from "./test_util.ts";
import { pollUntil } from "./test_util.ts";

const MiB = 1024 * 1024;

/** Flips one byte of `path` in place, keeping its size and mtime. */
async function rot(path: string, at: number): Promise<void> {
  const before = await Deno.stat(path);
  using file = await Deno.open(path, { read: true, write: true });
  const byte = new Uint8Array(1);
  await file.seek(at, Deno.SeekMode.Start);
  await file.read(byte);
  byte[0]! ^= 0x10;
  await file.seek(at, Deno.SeekMode.Start);
  await file.write(byte);
  await Deno.utime(path, before.atime ?? new Date(), before.mtime!);
}

/** `ftv <command> ... --host 127.0.0.1 --port PORT`. */
function cli(port: number, ...args: string[]) {
  return runCli([...args, "--host", "127.0.0.1", "--port", String(port)]);
}

async function listed(port: number): Promise<
  { name: string; sha256: string; damaged?: boolean }[]
> {
  const result = await cli(port, "list", "--json");
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout).files;
}

async function stored(tmp: TempDir, port: number, size: number) {
  const source = tmp.join("good.bin");
  await writeRandomFile(source, size);
  const sent = await cli(port, "send", source);
  assert.equal(sent.code, 0, sent.stderr);
  return { source, digest: await sha256File(source) };
}

Deno.test("a rotted file fails one download, is listed damaged, refused at once, and repaired by a re-send", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  await using server = await spawnServer(["--dir", dir, "--parity", "off"]);
  const { source, digest } = await stored(tmp, server.port, 2 * MiB + 5);
  await rot(`${dir}/good.bin`, MiB + 3);

  const first = await cli(
    server.port,
    "get",
    "good.bin",
    "--out",
    tmp.join("a"),
  );
  assert.equal(first.code, 1);
  assert.match(first.stderr, /damaged/);
  assert.equal(
    first.stderr.trim().split("\n").filter((l) => l.startsWith("ftv:")).length,
    1,
  );
  assert.equal(
    server.log().match(/File split into/g)?.length,
    1,
    "the file was downloaded once, not once per retry",
  );
  assert.match(server.log(), /Stored file good\.bin is damaged/);
  assert.deepEqual(
    (await listed(server.port)).map((f) => [f.name, f.damaged]),
    [["good.bin", true]],
  );

  const again = await cli(
    server.port,
    "get",
    "good.bin",
    "--out",
    tmp.join("b"),
  );
  assert.equal(again.code, 1);
  assert.match(again.stderr, /damaged/);
  assert.equal(server.log().match(/File split into/g)?.length, 1);

  const resent = await cli(server.port, "send", source);
  assert.equal(resent.code, 0, resent.stderr);
  assert.doesNotMatch(
    server.log(),
    /good\.bin is already stored with that digest/,
  );
  const [entry] = await listed(server.port);
  assert.equal(entry?.sha256, digest);
  assert.equal(entry?.damaged, undefined);
  const back = await cli(
    server.port,
    "get",
    "good.bin",
    "--out",
    tmp.join("c"),
  );
  assert.equal(back.code, 0, back.stderr);
  assert.equal(await sha256File(tmp.join("c")), digest);
});

Deno.test("a rotted small file of a folder is refused as damaged, not served", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  await using server = await spawnServer(["--dir", dir, "--parity", "off"]);
  await Deno.mkdir(tmp.join("tree"));
  await writeRandomFile(tmp.join("tree/small.bin"), 3000);
  const sent = await cli(server.port, "send", tmp.join("tree"));
  assert.equal(sent.code, 0, sent.stderr);
  await rot(`${dir}/tree/small.bin`, 100);
  const got = await cli(server.port, "get", "tree", "--out", tmp.join("back"));
  assert.equal(got.code, 1);
  assert.match(got.stderr, /damaged/);
  const files = await listed(server.port);
  assert.deepEqual(files.map((f) => [f.name, f.damaged]), [[
    "tree/small.bin",
    true,
  ]]);
});

Deno.test("server --verify re-hashes the store at start, names what rotted, and keeps serving", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  {
    await using first = await spawnServer(["--dir", dir, "--parity", "off"]);
    await stored(tmp, first.port, MiB + 11);
    await writeRandomFile(tmp.join("other.bin"), 4096);
    assert.equal(
      (await cli(first.port, "send", tmp.join("other.bin"))).code,
      0,
    );
  }
  await rot(`${dir}/good.bin`, 7);
  await using server = await spawnServer([
    "--dir",
    dir,
    "--verify",
    "--parity",
    "off",
  ]);
  await pollUntil(() => /Store check done/.test(server.log()), {
    what: "the store check to finish",
  });
  assert.match(server.log(), /Store check: good\.bin is damaged/);
  assert.match(
    server.log(),
    /2 file\(s\), .*1 intact, 0 recorded, 0 repaired from parity, 1 damaged/,
    `digest cache: ${await Deno.readTextFile(`${dir}/.ftv/digests.json`)}; ${
      JSON.stringify(await Deno.stat(`${dir}/other.bin`))
    }`,
  );
  const files = await listed(server.port);
  assert.deepEqual(
    files.map((f) => [f.name, f.damaged ?? false]),
    [["good.bin", true], ["other.bin", false]],
  );
});
