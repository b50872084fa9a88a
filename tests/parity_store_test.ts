/**
 * The self-healing store: parity kept beside stored files rebuilds rotted
 * chunks (up to M per group), by the store check and by a `get` that meets
 * a rotted chunk; without parity, rot is reported and refused, never
 * served as verified.
 */

import assert from "node:assert/strict";
import { Rng } from "../faults/rng.ts";
import { curl, httpServer } from "./http_util.ts";
import {
  pollUntil,
  runCli,
  sha256File,
  spawnServer,
  type TempDir,
  tempDir,
  writeRandomFile,
} from "./test_util.ts";

const CHUNK = 4096;
const FILES = 20;
const FLIPS = 50;
const SEED = Number(Deno.env.get("FTV_TEST_SEED") ?? 20261206);

function cli(port: number, ...args: string[]) {
  return runCli([...args, "--host", "127.0.0.1", "--port", String(port)]);
}

/** Flips one bit of `path` at `at`, keeping size and times. */
async function flip(path: string, at: number, bit: number): Promise<void> {
  const before = await Deno.stat(path);
  using file = await Deno.open(path, { read: true, write: true });
  const byte = new Uint8Array(1);
  await file.seek(at, Deno.SeekMode.Start);
  await file.read(byte);
  byte[0]! ^= 1 << bit;
  await file.seek(at, Deno.SeekMode.Start);
  await file.write(byte);
  await Deno.utime(path, before.atime ?? new Date(), before.mtime!);
}

/** A store of `FILES` files sent through a server with `args`; their names and digests. */
async function storeFiles(tmp: TempDir, dir: string, args: string[]) {
  await Deno.mkdir(tmp.join("src"));
  const digests = new Map<string, string>();
  await using server = await spawnServer([
    "--dir",
    dir,
    "--chunk-size",
    String(CHUNK),
    ...args,
  ]);
  for (let i = 0; i < FILES; i++) {
    const name = `f${String(i).padStart(2, "0")}.bin`;
    await writeRandomFile(tmp.join(`src/${name}`), 20 * CHUNK + 97 * i);
    const sent = await cli(server.port, "send", tmp.join(`src/${name}`));
    assert.equal(sent.code, 0, sent.stderr);
    digests.set(name, await sha256File(tmp.join(`src/${name}`)));
  }
  return digests;
}

/**
 * `FLIPS` bit flips at seeded random places across the stored files, at
 * most `m` damaged chunks in any group of `k`: what parity promises to
 * rebuild. Returns each damaged chunk as `name:seq`.
 */
async function rot(dir: string, names: string[], k: number, m: number) {
  const rng = new Rng(SEED);
  const damaged = new Set<string>();
  const perGroup = new Map<string, Set<number>>();
  for (let flips = 0; flips < FLIPS;) {
    const name = names[rng.int(names.length)]!;
    const size = (await Deno.stat(`${dir}/${name}`)).size;
    const at = rng.int(size);
    const seq = Math.floor(at / CHUNK);
    const group = `${name}:${Math.floor(seq / k)}`;
    const chunks = perGroup.get(group) ?? new Set();
    if (!chunks.has(seq) && chunks.size >= m) continue;
    chunks.add(seq);
    perGroup.set(group, chunks);
    await flip(`${dir}/${name}`, at, rng.int(8));
    damaged.add(`${name}:${seq}`);
    flips++;
  }
  return damaged;
}

Deno.test("50 byte flips across 20 stored files are all rebuilt from parity by the store check, each repair logged", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const digests = await storeFiles(tmp, dir, ["--parity", "8+2"]);
  const damaged = await rot(dir, [...digests.keys()], 8, 2);
  await using server = await spawnServer([
    "--dir",
    dir,
    "--chunk-size",
    String(CHUNK),
    "--parity",
    "8+2",
    "--verify",
  ]);
  await pollUntil(() => /Store check done/.test(server.log()), {
    what: "the store check",
  });
  const repairs = new Set(
    [...server.log().matchAll(/Repaired chunk (\d+) of (\S+) from parity/g)]
      .map((match) => `${match[2]}:${match[1]}`),
  );
  assert.deepEqual(
    [...repairs].sort(),
    [...damaged].sort(),
    "every damaged chunk named as repaired",
  );
  assert.match(server.log(), /Store check done: 20 file\(s\), .* 0 damaged/);
  for (const [name, digest] of digests) {
    assert.equal(
      await sha256File(`${dir}/${name}`),
      digest,
      `${name} is whole again`,
    );
  }
  const listed =
    JSON.parse((await cli(server.port, "list", "--json")).stdout).files;
  assert.ok(listed.every((f: { damaged?: boolean }) => !f.damaged));
});

Deno.test("without parity the same rot is reported per file and refused on get", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const digests = await storeFiles(tmp, dir, ["--parity", "off"]);
  const damaged = await rot(dir, [...digests.keys()], 8, 2);
  const hit = new Set([...damaged].map((place) => place.split(":")[0]!));
  await using server = await spawnServer([
    "--dir",
    dir,
    "--chunk-size",
    String(CHUNK),
    "--parity",
    "off",
    "--verify",
  ]);
  await pollUntil(() => /Store check done/.test(server.log()), {
    what: "the store check",
  });
  for (const name of digests.keys()) {
    const reported = new RegExp(
      `Store check: ${name.replace(".", "\\.")} is damaged`,
    ).test(server.log());
    assert.equal(reported, hit.has(name), `${name} reported as damaged`);
  }
  const [name] = [...hit];
  const got = await cli(
    server.port,
    "get",
    name!,
    "--out",
    tmp.join("back.bin"),
  );
  assert.equal(got.code, 1);
  assert.match(got.stderr, /damaged/);
});

Deno.test("get of a file with a rotted chunk repairs it from parity first, then serves it verified", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  await using server = await spawnServer([
    "--dir",
    dir,
    "--chunk-size",
    String(CHUNK),
  ]);
  const source = tmp.join("doc.bin");
  await writeRandomFile(source, 40 * CHUNK + 5);
  assert.equal((await cli(server.port, "send", source)).code, 0);
  await flip(`${dir}/doc.bin`, 7 * CHUNK + 100, 3);
  const got = await cli(
    server.port,
    "get",
    "doc.bin",
    "--out",
    tmp.join("back.bin"),
  );
  assert.equal(got.code, 0, got.stderr);
  assert.equal(
    await sha256File(tmp.join("back.bin")),
    await sha256File(source),
  );
  assert.match(
    server.log(),
    /Repaired chunk 7 of doc\.bin from parity \(group 0\) before sending it/,
  );
  assert.equal(
    await sha256File(`${dir}/doc.bin`),
    await sha256File(source),
    "repaired on disk too",
  );
});

Deno.test("an HTTP download of a file with rotted chunks repairs them from parity first, for a range too", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  await using srv = await httpServer(dir, ["--chunk-size", String(CHUNK)]);
  const source = tmp.join("doc.bin");
  await writeRandomFile(source, 40 * CHUNK + 5);
  assert.equal((await cli(srv.server.port, "send", source)).code, 0);
  const url = `${srv.base}/files/doc.bin`;

  await flip(`${dir}/doc.bin`, 7 * CHUNK + 100, 3);
  const whole = await curl("-f", "-o", tmp.join("back.bin"), url);
  assert.equal(whole.code, 0, whole.stderr);
  assert.equal(
    await sha256File(tmp.join("back.bin")),
    await sha256File(source),
  );
  assert.match(
    srv.server.log(),
    /Repaired chunk 7 of doc\.bin from parity \(group 0\) before sending it/,
  );

  // A range is served only once the whole file checked out: the rotted
  // chunk lies outside it and is repaired all the same.
  await flip(`${dir}/doc.bin`, 33 * CHUNK + 9, 5);
  const range = await curl(
    "-f",
    "-r",
    `${2 * CHUNK}-${3 * CHUNK - 1}`,
    "-o",
    tmp.join("range.bin"),
    url,
  );
  assert.equal(range.code, 0, range.stderr);
  const expected = (await Deno.readFile(source)).subarray(2 * CHUNK, 3 * CHUNK);
  assert.deepEqual(await Deno.readFile(tmp.join("range.bin")), expected);
  assert.match(srv.server.log(), /Repaired chunk 33 of doc\.bin from parity/);
  assert.equal(
    await sha256File(`${dir}/doc.bin`),
    await sha256File(source),
    "repaired on disk too",
  );
});

Deno.test("--parity adds parity to files stored without it, during the store check", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const source = tmp.join("old.bin");
  await writeRandomFile(source, 10 * CHUNK);
  {
    await using old = await spawnServer([
      "--dir",
      dir,
      "--chunk-size",
      String(CHUNK),
      "--parity",
      "off",
    ]);
    assert.equal((await cli(old.port, "send", source)).code, 0);
  }
  await assert.rejects(Deno.stat(`${dir}/.ftv/parity/old.bin.ftvpar`));
  await using server = await spawnServer([
    "--dir",
    dir,
    "--chunk-size",
    String(CHUNK),
    "--verify",
  ]);
  await pollUntil(() => /Store check done/.test(server.log()), {
    what: "the store check",
  });
  assert.match(server.log(), /1 given parity/);
  assert.ok((await Deno.stat(`${dir}/.ftv/parity/old.bin.ftvpar`)).size > 0);
});
