/**
 * Folders: `send PATH...` of trees and `get` of a stored tree, with real
 * server and client processes; the path rules for relative names; hostile
 * relative names and linked folders refused with `bad_name`; eager puts
 * that fail answered with `nack` round 0.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { encodeControl, encodeData, type Frame, serve } from "../mod.ts";
import {
  MAX_PATH_BYTES,
  MAX_PATH_DEPTH,
  pathRefusal,
} from "../protocol/names.ts";
import {
  type ControlMessage,
  type ControlOf,
  FrameReader,
  parseControl,
  PROTOCOL_VERSION,
} from "../protocol.ts";
import {
  exists,
  hasCommand,
  lines,
  listDir,
  LogCapture,
  nextFrame,
  pollUntil,
  runCli,
  spawnCli,
  spawnServer,
  type TempDir,
  tempDir,
  testServer,
  writeAll,
} from "./test_util.ts";
import { ProtocolError } from "../base/errors.ts";

const HOST = "127.0.0.1";
const encoder = new TextEncoder();

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

Deno.test({
  name: "pathRefusal() accepts nested relative names and refuses hostile ones",
  permissions: "none",
  async fn(t) {
    const accepted = [
      "a",
      "a/b",
      "photos/2024/IMG 0001.jpg",
      "数据/файл/émoji 🚀.txt",
      "a/.hidden/b",
      "a/...",
      Array.from({ length: MAX_PATH_DEPTH }, () => "d").join("/"),
      `a/${"x".repeat(200)}/${"y".repeat(200)}`,
    ];
    for (const name of accepted) {
      await t.step(`accepts ${JSON.stringify(name).slice(0, 40)}`, () => {
        assert.equal(pathRefusal(name), undefined);
      });
    }
    const refused: [string, string][] = [
      ["parent escape", "a/../../x"],
      ["absolute", "/abs"],
      ["empty component", "a//b"],
      ["dot component", "a/./b"],
      ["trailing parent", "a/b/.."],
      ["trailing slash", "a/"],
      ["leading parent", "../x"],
      ["meta folder inside", "x/.ftv"],
      ["meta folder on the way", "x/.ftv/y"],
      ["part file on the way", "a/x.ftv-part/b"],
      ["state file at the end", "a/x.ftv-state"],
      ["NUL in a component", "a\u0000b/c"],
      ["NUL at the end", "a/b\u0000"],
      ["newline in a folder", "a\n/b"],
      ["backslash in a component", "a\\b/c"],
      ["drive letter", "C:/x/y"],
      ["lone surrogate", "a/\ud800"],
      [
        "too deep",
        Array.from({ length: MAX_PATH_DEPTH + 1 }, () => "d").join("/"),
      ],
      ["too long", Array.from({ length: 20 }, () => "x".repeat(210)).join("/")],
      ["component too long", `a/${"x".repeat(256)}`],
      ["empty", ""],
    ];
    assert.ok(
      encoder.encode(refused.find(([l]) => l === "too long")![1]).length >
        MAX_PATH_BYTES,
    );
    for (const [label, name] of refused) {
      await t.step(`refuses ${label}`, () => {
        assert.equal(pathRefusal(name)?.code, "bad_name", `accepted ${label}`);
      });
    }
  },
});

Deno.test({
  name:
    "parseControl() checks mkdir, list prefixes, listed folders and eager puts",
  permissions: "none",
  fn() {
    const parse = (message: unknown) =>
      parseControl(encoder.encode(JSON.stringify(message)));
    const mkdir = {
      type: "mkdir",
      transferId: 1,
      name: "a/b",
      mode: 0o755,
      mtimeMs: -5,
    };
    assert.deepEqual(parse(mkdir), mkdir);
    assert.throws(() => parse({ ...mkdir, mode: -1 }), ProtocolError);
    assert.throws(() => parse({ ...mkdir, name: 7 }), ProtocolError);
    assert.deepEqual(parse({ type: "list", prefix: "a" }), {
      type: "list",
      prefix: "a",
    });
    assert.throws(() => parse({ type: "list", prefix: 1 }), ProtocolError);
    const listing = {
      type: "listing",
      files: [{ name: "a/f", size: 1, sha256: "x", mtimeMs: 0, mode: 0o644 }],
      dirs: [{ name: "a", mtimeMs: 0, mode: 0o755 }],
    };
    assert.deepEqual(parse(listing), listing);
    assert.throws(
      () => parse({ ...listing, dirs: [{ name: "a", mtimeMs: 0 }] }),
      /folder 0: field "mode"/,
    );
    assert.throws(
      () => parse({ ...listing, dirs: {} }),
      /"dirs" must be a list/,
    );
    const put = {
      type: "put",
      name: "a/f",
      size: 3,
      chunkSize: 4096,
      mtimeMs: 0,
      maxRetries: 0,
      sha256: "x",
      mode: 0o600,
      eager: true,
      transferId: 9,
    };
    assert.deepEqual(parse(put), put);
    assert.throws(() => parse({ ...put, eager: "yes" }), /"eager"/);
    assert.throws(() => parse({ ...put, transferId: -1 }), /"transferId"/);
  },
});

const FILES = 1000;
const LINK = "link-to-d1";
const MODES = [0o600, 0o640, 0o644, 0o755, 0o700, 0o444];
const DIR_MODES = [0o755, 0o750, 0o700];
const UNICODE = ["файл", "数据", "é ü", "emoji 🚀"];

/**
 * Writes a tree of `files` files under `root` in nested folders: empty files,
 * files larger than the server's 4 KiB chunk, Unicode names, empty folders,
 * varied modes and millisecond mtimes, and one symbolic link. Returns the
 * relative paths of the files and folders (the link left out).
 */
async function makeTree(
  root: string,
  files: number,
): Promise<{ files: string[]; dirs: string[]; bytes: number }> {
  const made = { files: [] as string[], dirs: [] as string[], bytes: 0 };
  const folder = async (relative: string) => {
    await Deno.mkdir(`${root}/${relative}`, { recursive: true });
    if (!made.dirs.includes(relative)) made.dirs.push(relative);
  };
  await Deno.mkdir(root);
  for (const empty of ["empty", "d0/empty/deeper"]) {
    const parts = empty.split("/");
    for (let i = 1; i <= parts.length; i++) {
      await folder(parts.slice(0, i).join("/"));
    }
  }
  for (let i = 0; i < files; i++) {
    const top = `d${i % 10}`;
    const sub = `${top}/${i % 3 === 0 ? UNICODE[i % 4] : "s"}${(i >> 4) % 7}`;
    await folder(top);
    await folder(sub);
    const name = i % 5 === 0
      ? `${UNICODE[i % 4]} ${i}.txt`
      : `f${String(i).padStart(4, "0")}.bin`;
    const size = i % 37 === 0 ? 0 : i % 50 === 1 ? 9000 + i : (i * 131) % 3000;
    const relative = `${sub}/${name}`;
    const path = `${root}/${relative}`;
    await Deno.writeFile(path, crypto.getRandomValues(new Uint8Array(size)));
    await Deno.chmod(path, MODES[i % MODES.length]!);
    await Deno.utime(path, new Date(), new Date(1_600_000_000_123 + i * 1001));
    made.files.push(relative);
    made.bytes += size;
  }
  await Deno.symlink("d1", `${root}/${LINK}`);
  // Deepest first, so setting a folder's mtime is not undone by its children.
  const byDepth = [...made.dirs].sort((a, b) =>
    b.split("/").length - a.split("/").length
  );
  for (const [i, dir] of byDepth.entries()) {
    await Deno.chmod(`${root}/${dir}`, DIR_MODES[i % DIR_MODES.length]!);
    await Deno.utime(
      `${root}/${dir}`,
      new Date(),
      new Date(1_500_000_000_456 + i * 7),
    );
  }
  await Deno.chmod(root, 0o750);
  await Deno.utime(root, new Date(), new Date(1_400_000_000_789));
  return made;
}

/** Mode bits and mtime of `path`, to compare across copies. */
async function attributes(path: string): Promise<string> {
  const info = await Deno.lstat(path);
  return `${((info.mode ?? 0) & 0o777).toString(8)} ${info.mtime?.getTime()} ${
    info.isDirectory ? "dir" : info.size
  }`;
}

/** Ordinary (not eager) gets a server has logged. */
function ordinaryGets(log: string): number {
  return log.match(/File split into \d+ chunks/g)?.length ?? 0;
}

/** Regular files under `dir`, recursively. */
async function countFiles(dir: string): Promise<number> {
  let count = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && !entry.name.includes(".ftv-")) count++;
      if (entry.isDirectory) count += await countFiles(`${dir}/${entry.name}`);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return count;
}

Deno.test("send and get of a folder keep 1,000 files with their names, modes and mtimes, empty entries included", async (t) => {
  await using tmp = await tempDir();
  const src = tmp.join("tree");
  const made = await makeTree(src, FILES);
  const srv = tmp.join("srv");
  await using server = await spawnServer([
    "--dir",
    srv,
    "--no-fsync",
    "--chunk-size",
    "4096",
  ]);
  const port = ["--host", HOST, "--port", String(server.port)];
  const symlinkWarnings = (stderr: string) =>
    lines(stderr).filter((line) => / - WARNING - .*symbolic link/.test(line));

  await t.step(
    "--dry-run lists every file and a total, and sends nothing",
    async () => {
      const dry = await runCli(["send", src, "--dry-run", ...port]);
      assert.equal(dry.code, 0, dry.stderr);
      const out = lines(dry.stdout);
      assert.equal(out.length, FILES + 1);
      assert.match(
        out.at(-1)!,
        new RegExp(`^${FILES} file\\(s\\), ${made.bytes} bytes`),
      );
      assert.ok(out.includes(`${"0".padStart(12)}  tree/${made.files[0]}`));
      assert.equal(symlinkWarnings(dry.stderr).length, 1, dry.stderr);
      assert.deepEqual((await listDir(srv)).filter((n) => n !== ".ftv"), []);
    },
  );

  await t.step(
    "--follow-symlinks walks into the linked folder instead",
    async () => {
      const dry = await runCli([
        "send",
        src,
        "--dry-run",
        "--follow-symlinks",
        ...port,
      ]);
      assert.equal(dry.code, 0, dry.stderr);
      const inD1 = made.files.filter((name) => name.startsWith("d1/")).length;
      assert.ok(inD1 > 0);
      assert.equal(lines(dry.stdout).length, FILES + inD1 + 1);
      assert.ok(dry.stdout.includes(`  tree/${LINK}/`));
      assert.equal(symlinkWarnings(dry.stderr).length, 0, dry.stderr);
    },
  );

  await t.step(
    "send uploads the tree over one connection, reports the link once",
    async () => {
      const sent = await runCli(["send", src, "--json", ...port]);
      assert.equal(sent.code, 0, sent.stderr);
      const warnings = symlinkWarnings(sent.stderr);
      assert.equal(warnings.length, 1, sent.stderr);
      assert.ok(warnings[0]!.includes(LINK));
      const result = JSON.parse(sent.stdout);
      assert.equal(result.files, FILES);
      assert.equal(result.bytes, made.bytes);
      assert.equal(result.dirs, made.dirs.length + 1);
      assert.equal(result.skippedLinks, 1);
      assert.equal(result.connections, 1);
      assert.equal(result.resumedFiles, 0);
      assert.ok(result.wireBytes >= made.bytes, `${result.wireBytes}`);
      assert.equal(result.entries.length, FILES);
      for (const entry of result.entries.slice(0, 50)) {
        const bytes = await Deno.readFile(`${tmp.path}/${entry.name}`);
        assert.equal(entry.sha256, sha256(bytes), entry.name);
      }
      assert.equal(await exists(`${srv}/tree/${LINK}`), false);
      assert.equal(
        server.log().match(/Connection established/g)?.length,
        1,
        "the dry run connects nowhere; the send uses one connection",
      );
    },
  );

  await t.step(
    "list shows nested files and every folder, empty ones too",
    async () => {
      const listed = await runCli(["list", "--json", ...port]);
      assert.equal(listed.code, 0, listed.stderr);
      const { files, dirs } = JSON.parse(listed.stdout);
      assert.equal(files.length, FILES);
      const names = dirs.map((dir: { name: string }) => dir.name);
      for (const dir of ["tree", "tree/empty", "tree/d0/empty/deeper"]) {
        assert.ok(names.includes(dir), `${dir} missing from ${names}`);
      }
      assert.ok(!names.some((name: string) => name.startsWith(".ftv")));
    },
  );

  const back = tmp.join("back");
  await t.step("get recreates the tree: diff -r finds nothing", async () => {
    const ordinaryBefore = ordinaryGets(server.log());
    const got = await runCli([
      "get",
      "tree",
      "--out",
      back,
      "--no-fsync",
      "--json",
      ...port,
    ]);
    assert.equal(got.code, 0, got.stderr);
    const result = JSON.parse(got.stdout);
    assert.equal(result.files, FILES);
    assert.equal(result.bytes, made.bytes);
    assert.ok(!/ - INFO - .*\.bin/.test(got.stderr), "per-file INFO lines");
    // Only files over one 4 KiB chunk take an ordinary get; the rest come eagerly.
    let large = 0;
    for (const file of made.files) {
      if ((await Deno.stat(`${src}/${file}`)).size > 4096) large++;
    }
    assert.ok(large > 0);
    assert.equal(ordinaryGets(server.log()) - ordinaryBefore, large);
    if (await hasCommand("diff")) {
      const diff = await new Deno.Command("diff", {
        args: ["-r", "-x", LINK, src, back],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(
        diff.code,
        0,
        new TextDecoder().decode(diff.stdout) +
          new TextDecoder().decode(diff.stderr),
      );
    }
  });

  await t.step(
    "modes and mtimes match on the server and on the way back",
    async () => {
      for (const relative of ["", ...made.dirs, ...made.files]) {
        const suffix = relative === "" ? "" : `/${relative}`;
        const expected = await attributes(src + suffix);
        assert.equal(
          await attributes(back + suffix),
          expected,
          `back${suffix}`,
        );
        const stored = await attributes(`${srv}/tree${suffix}`);
        if (relative === "" || made.dirs.includes(relative)) {
          assert.equal(stored, expected, `stored folder tree${suffix}`);
        } else {
          assert.equal(stored, expected, `stored tree${suffix}`);
        }
      }
    },
  );

  await t.step(
    "sending it again moves no file: the server holds each one",
    async () => {
      const again = await runCli(["send", src, "--json", "--quiet", ...port]);
      assert.equal(again.code, 0, again.stderr);
      const result = JSON.parse(again.stdout);
      assert.equal(result.files, FILES);
      assert.equal(result.resumedFiles, FILES);
    },
  );
});

Deno.test("a killed folder upload, run again, skips the files already stored", async () => {
  await using tmp = await tempDir();
  const src = tmp.join("album");
  const made = await makeTree(src, 300);
  const srv = tmp.join("srv");
  await using server = await spawnServer([
    "--dir",
    srv,
    "--no-fsync",
    "--chunk-size",
    "4096",
  ]);
  const port = ["--host", HOST, "--port", String(server.port)];
  {
    await using slow = spawnCli([
      "send",
      src,
      "--as",
      "backup/album",
      "--limit-rate",
      "40k",
      "--quiet",
      ...port,
    ]);
    await pollUntil(async () => await countFiles(`${srv}/backup/album`) >= 30, {
      what: "30 files stored",
    });
    assert.equal(slow.done, false, "the slow upload finished too soon");
    slow.kill("SIGKILL");
    await slow.result;
  }
  const held = await countFiles(`${srv}/backup/album`);
  assert.ok(held < made.files.length, `${held} files held`);
  const again = await runCli([
    "send",
    src,
    "--as",
    "backup/album",
    "--json",
    ...port,
  ]);
  assert.equal(again.code, 0, again.stderr);
  const result = JSON.parse(again.stdout);
  assert.equal(result.files, made.files.length);
  assert.ok(result.resumedFiles >= held, `${result.resumedFiles} < ${held}`);
  assert.equal(await countFiles(`${srv}/backup/album`), made.files.length);
  for (const relative of made.files.slice(0, 40)) {
    assert.deepEqual(
      await Deno.readFile(`${srv}/backup/album/${relative}`),
      await Deno.readFile(`${src}/${relative}`),
    );
  }
});

/** A raw connection to an in-process server, past the hellos. */
async function rawSession(port: number) {
  const conn = await Deno.connect({ hostname: HOST, port });
  conn.setNoDelay(true);
  const reader = new FrameReader(conn);
  await writeAll(
    conn,
    encodeControl({
      type: "hello",
      version: PROTOCOL_VERSION,
      agent: "tree-test",
    }),
  );
  const hello = await nextFrame(reader, conn);
  assert.equal(hello?.kind === "control" && hello.message.type, "hello");
  let nextId = 1;
  return {
    conn,
    reader,
    /** Sends frames and returns the next reply. */
    async ask(...frames: Uint8Array[]): Promise<Frame | null> {
      for (const frame of frames) await writeAll(conn, frame);
      return await nextFrame(reader, conn);
    },
    /** The frames of an eager put of `bytes` as `name`. */
    eager(
      name: string,
      bytes: Uint8Array,
      digest = sha256(bytes),
    ): Uint8Array[] {
      const transferId = nextId++;
      const put: ControlMessage = {
        type: "put",
        name,
        size: bytes.length,
        chunkSize: 4096,
        mtimeMs: 1_700_000_000_000,
        maxRetries: 0,
        sha256: digest,
        mode: 0o640,
        eager: true,
        transferId,
      };
      return bytes.length === 0
        ? [encodeControl(put)]
        : [encodeControl(put), encodeData(transferId, 0, bytes)];
    },
    [Symbol.dispose]() {
      try {
        conn.close();
      } catch {
        // Closed by a timeout in nextFrame already.
      }
    },
  };
}

/** An in-process server with 4 KiB chunks that does not sync, for raw sessions. */
function smallChunkServer(tmp: TempDir) {
  return testServer(tmp, new LogCapture(), { chunkSize: 4096, fsync: false });
}

function replyOf(frame: Frame | null): ControlMessage {
  assert.ok(frame?.kind === "control", "expected a control reply");
  return frame.message;
}

function assertRefused(frame: Frame | null, code = "bad_name"): void {
  const reply = replyOf(frame);
  assert.equal(reply.type, "error", JSON.stringify(reply));
  assert.equal((reply as { code: string }).code, code);
}

Deno.test("serve() refuses hostile relative names and linked folders with bad_name, and writes nothing outside", async (t) => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const outside = tmp.join("outside");
  await Deno.mkdir(`${dir}/real`, { recursive: true });
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/canary.txt`, "untouched\n");
  await Deno.symlink("../outside", `${dir}/evil`);
  await Deno.symlink("../../outside", `${dir}/real/inner`);
  const logs = new LogCapture();
  await using server = await serve({
    host: HOST,
    port: 0,
    dir,
    chunkSize: 4096,
    fsync: false,
    log: logs.logger("FileTransferServer"),
  });
  using s = await rawSession(server.addr.port);
  const payload = encoder.encode("pwned\n");
  const hostile = [
    "a/../../x",
    "/abs",
    "a//b",
    "a/./b",
    "a/b/..",
    "a/",
    "x/.ftv",
    "x/.ftv/y",
    "a\u0000b/c",
    "a/b\u0000",
    "a/x.ftv-part/b",
    "..\\x/y",
    "C:/x",
    `${outside}/pwned`,
    Array.from({ length: MAX_PATH_DEPTH + 1 }, () => "d").join("/"),
    "evil/pwned",
    "evil/sub/pwned",
    "real/inner/pwned",
  ];
  for (const name of hostile) {
    await t.step(`${JSON.stringify(name).slice(0, 40)}`, async () => {
      assertRefused(await s.ask(...s.eager(name, payload)));
      assertRefused(
        await s.ask(encodeControl({
          type: "put",
          name,
          size: payload.length,
          chunkSize: 4096,
          mtimeMs: 0,
          maxRetries: 0,
        })),
      );
      assertRefused(
        await s.ask(encodeControl({
          type: "mkdir",
          transferId: 1,
          name,
          mode: 0o755,
          mtimeMs: 0,
        })),
      );
      assertRefused(await s.ask(encodeControl({ type: "get", name })));
    });
  }
  await t.step(
    "a linked folder itself cannot be made or listed through",
    async () => {
      assertRefused(
        await s.ask(encodeControl({
          type: "mkdir",
          transferId: 2,
          name: "evil",
          mode: 0o777,
          mtimeMs: 0,
        })),
      );
      assertRefused(
        await s.ask(encodeControl({ type: "get", name: "evil/canary.txt" })),
      );
      const listing = replyOf(
        await s.ask(encodeControl({ type: "list", prefix: "evil" })),
      );
      assert.deepEqual(listing, { type: "listing", files: [] });
      assertRefused(
        await s.ask(encodeControl({ type: "list", prefix: "a/../b" })),
      );
    },
  );
  await t.step(
    "the session goes on and nothing was written outside",
    async () => {
      const reply = replyOf(await s.ask(...s.eager("ok/fine.txt", payload)));
      assert.equal(reply.type, "verified", JSON.stringify(reply));
      assert.equal(await Deno.readTextFile(`${dir}/ok/fine.txt`), "pwned\n");
      assert.equal(
        ((await Deno.stat(`${dir}/ok/fine.txt`)).mode ?? 0) & 0o777,
        0o640,
      );
      assert.deepEqual(await listDir(outside), ["canary.txt"]);
      assert.equal(
        await Deno.readTextFile(`${outside}/canary.txt`),
        "untouched\n",
      );
      assert.deepEqual(await listDir(`${dir}/real`), ["inner"]);
      assert.equal(await exists(tmp.join("x")), false);
      assert.equal(await exists("/abs"), false);
    },
  );
});

Deno.test("serve() refuses a folder swapped for a link between two files of a tree and writes nothing outside", async (t) => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const outside = tmp.join("outside");
  await Deno.mkdir(`${outside}/a`, { recursive: true });
  const logs = new LogCapture();
  await using server = await testServer(tmp, logs, {
    dir,
    chunkSize: 4096,
    fsync: false,
  });
  using s = await rawSession(server.addr.port);
  const payload = encoder.encode("tree file\n");
  const stored = async (name: string) => {
    const reply = replyOf(await s.ask(...s.eager(name, payload)));
    assert.equal(reply.type, "verified", JSON.stringify(reply));
  };
  await stored("t/a/1");
  await stored("t/a/2");
  await t.step("the folder itself replaced by a link", async () => {
    await Deno.rename(`${dir}/t/a`, tmp.join("a-aside"));
    await Deno.symlink(`${outside}/a`, `${dir}/t/a`);
    assertRefused(await s.ask(...s.eager("t/a/3", payload)));
    await Deno.remove(`${dir}/t/a`);
    await Deno.rename(tmp.join("a-aside"), `${dir}/t/a`);
    await stored("t/a/4");
  });
  await t.step("a folder above it replaced by a link", async () => {
    await Deno.rename(`${dir}/t`, tmp.join("t-aside"));
    await Deno.symlink(outside, `${dir}/t`);
    assertRefused(await s.ask(...s.eager("t/a/5", payload)));
  });
  assert.deepEqual(await listDir(`${outside}/a`), []);
  assert.deepEqual(await listDir(tmp.join("t-aside/a")), ["1", "2", "4"]);
});

Deno.test("serve() answers a damaged or mismatched eager put with nack round 0 and goes on", async () => {
  await using tmp = await tempDir();
  await using server = await smallChunkServer(tmp);
  using s = await rawSession(server.addr.port);
  const bytes = encoder.encode("some bytes\n");

  const wrong = replyOf(
    await s.ask(...s.eager("a/wrong.txt", bytes, sha256(encoder.encode("x")))),
  );
  assert.equal(wrong.type, "nack", JSON.stringify(wrong));
  assert.equal((wrong as { round: number }).round, 0);

  const [put, data] = s.eager("a/damaged.txt", bytes);
  data![data!.length - 1]! ^= 0x40;
  const damaged = replyOf(await s.ask(put!, data!));
  assert.equal(damaged.type, "nack", JSON.stringify(damaged));

  const empty = replyOf(await s.ask(...s.eager("a/empty", new Uint8Array(0))));
  assert.equal(empty.type, "verified", JSON.stringify(empty));
  const good = replyOf(await s.ask(...s.eager("a/damaged.txt", bytes)));
  assert.equal(good.type, "verified", JSON.stringify(good));
  assert.deepEqual(await listDir(tmp.join("srv/a")), ["damaged.txt", "empty"]);
  const again = replyOf(await s.ask(...s.eager("a/damaged.txt", bytes)));
  assert.equal(
    again.type,
    "verified",
    "a file already held is verified at once",
  );
});

Deno.test("serve() answers eager gets back to back without waiting, and refuses one larger than a chunk", async () => {
  await using tmp = await tempDir();
  await using server = await smallChunkServer(tmp);
  using s = await rawSession(server.addr.port);
  const text = encoder.encode("a small file\n".repeat(20));
  for (
    const [name, bytes] of [["g/a.txt", text], [
      "g/empty",
      new Uint8Array(0),
    ]] as const
  ) {
    const stored = replyOf(await s.ask(...s.eager(name, bytes)));
    assert.equal(stored.type, "verified", JSON.stringify(stored));
  }
  await Deno.writeFile(tmp.join("srv/g/big.bin"), new Uint8Array(10_000));

  // Three requests in one write; the server answers each without a word back.
  const get = (name: string) =>
    encodeControl({ type: "get", name, eager: true, compress: "none" });
  const offer = replyOf(
    await s.ask(get("g/a.txt"), get("g/empty"), get("g/big.bin")),
  );
  assert.equal(offer.type, "offer", JSON.stringify(offer));
  const { transferId, size, sha256: digest, mode } = offer as ControlOf<
    "offer"
  >;
  assert.equal(size, text.length);
  assert.equal(digest, sha256(text));
  assert.equal(mode, 0o640);
  const data = await nextFrame(s.reader, s.conn);
  assert.ok(data?.kind === "data" && data.intact, "no intact data frame");
  assert.equal(data.transferId, transferId);
  assert.deepEqual(new Uint8Array(data.payload), text);
  const empty = replyOf(await nextFrame(s.reader, s.conn));
  assert.equal(empty.type, "offer");
  assert.equal((empty as ControlOf<"offer">).size, 0);
  assertRefused(await nextFrame(s.reader, s.conn), "bad_request");

  // The session goes on.
  const again = replyOf(await s.ask(get("g/a.txt")));
  assert.equal(again.type, "offer");
});

Deno.test("get of a tree from a server that damages chunks still lands every file whole", async () => {
  await using tmp = await tempDir();
  const src = tmp.join("t");
  const made = await makeTree(src, 60);
  const srv = tmp.join("srv");
  await Deno.mkdir(srv);
  {
    await using clean = await spawnServer(["--dir", srv, "--no-fsync"]);
    const sent = await runCli([
      "send",
      src,
      "--host",
      HOST,
      "--port",
      String(clean.port),
    ]);
    assert.equal(sent.code, 0, sent.stderr);
  }
  await using damaging = await spawnServer([
    "--dir",
    srv,
    "--no-fsync",
    "--simulate-errors",
    "--error-rate",
    "0.3",
    "--seed",
    "11",
  ]);
  const back = tmp.join("back");
  const got = await runCli([
    "get",
    "t",
    "--out",
    back,
    "--no-fsync",
    "--json",
    "--host",
    HOST,
    "--port",
    String(damaging.port),
  ]);
  assert.equal(got.code, 0, got.stderr);
  const result = JSON.parse(got.stdout);
  assert.equal(result.files, made.files.length);
  assert.ok(
    /Simulating (packet loss|data corruption)/.test(damaging.log()),
    "the server damaged nothing",
  );
  // Damaged eager gets were got again the ordinary way; the rest were not.
  const ordinary = ordinaryGets(damaging.log());
  assert.ok(ordinary > 0, "no damaged file was got again");
  assert.ok(ordinary < made.files.length, "no file came by an eager get");
  for (const relative of made.files) {
    assert.deepEqual(
      await Deno.readFile(`${back}/${relative}`),
      await Deno.readFile(`${src}/${relative}`),
      relative,
    );
  }
});
