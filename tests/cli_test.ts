/**
 * End-to-end tests of the `ftv` command line: every command runs as a real
 * child process (`deno run mod.ts ...`), servers included.
 */

import assert from "node:assert/strict";
import { FtvClient, type Io, main } from "../mod.ts";
import { failureOf, UsageError } from "../cli/exit.ts";
import { type Flag, type FlagKind, valuesOf } from "../cli/flags.ts";
import { COMMANDS } from "../cli/options.ts";
import {
  failureMessage,
  lines,
  listDir,
  LOG_LINE,
  runCli,
  sameBytes,
  sha256File,
  sha256sum,
  spawnServer,
  STACK_LINE,
  tempDir,
  unusedPort,
  writeRandomFile,
} from "./test_util.ts";

const HOST = ["--host", "127.0.0.1"];

function assertLogFormat(stderr: string): void {
  const all = lines(stderr);
  assert.ok(all.length > 0, "expected log lines on stderr");
  for (const line of all) assert.match(line, LOG_LINE);
}

/** The two "Size: N bytes" lines of the demo banner. */
function bannerSizes(stdout: string): number[] {
  return [...stdout.matchAll(/^Size: (\d+) bytes$/gm)].map((m) => Number(m[1]));
}

/** A usage message: one line, no stack trace. */
function assertOneLineMessage(stderr: string): string {
  assert.ok(!stderr.includes(STACK_LINE), `stack trace on stderr:\n${stderr}`);
  const all = lines(stderr);
  assert.equal(all.length, 1, `expected one line on stderr, got:\n${stderr}`);
  return all[0]!;
}

Deno.test("demo round-trips a random file and prints the success banner", async () => {
  await using tmp = await tempDir();
  // The demo's own scratch folder lands in TMPDIR, so we can see it is cleaned.
  const result = await runCli(["demo"], {
    cwd: tmp.path,
    env: { TMPDIR: tmp.path },
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /FILE TRANSFER SUCCESSFUL!/);
  assert.deepEqual(bannerSizes(result.stdout), [10240, 10240]);
  assert.match(result.stdout, /File sizes match/);
  assertLogFormat(result.stderr);
  assert.deepEqual(await listDir(tmp.path), [], "the demo left files behind");
});

Deno.test("demo --simulate-errors repairs lost and corrupted chunks", async () => {
  await using tmp = await tempDir();
  const result = await runCli([
    "demo",
    "--test-file-size",
    "200",
    "--simulate-errors",
    "--error-rate",
    "0.2",
  ], { cwd: tmp.path, env: { TMPDIR: tmp.path } });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /FILE TRANSFER SUCCESSFUL!/);
  assert.deepEqual(bannerSizes(result.stdout), [204800, 204800]);
  assert.match(
    result.stderr,
    /Missing sequence numbers: \[|Checksum mismatch for chunk/,
  );
  assert.match(result.stderr, /Retrying/);
  assertLogFormat(result.stderr);
  assert.deepEqual(await listDir(tmp.path), [], "the demo left files behind");
});

Deno.test("client round-trips a 50 MB file through a server process", async () => {
  await using tmp = await tempDir();
  const file = tmp.join("big.bin");
  const out = tmp.join("copy.bin");
  const size = 50 * 1024 * 1024;
  await Deno.mkdir(tmp.join("srv"));
  await writeRandomFile(file, size);
  await using server = await spawnServer(["--dir", tmp.join("srv")]);

  const result = await runCli([
    "client",
    "--file",
    file,
    "--port",
    String(server.port),
    ...HOST,
    "--out",
    out,
    "--json",
  ], { cwd: tmp.path });

  assert.equal(result.code, 0, result.stderr);
  assert.ok(await sameBytes(file, out), "the copy differs from the original");
  const json = JSON.parse(result.stdout);
  assert.equal(json.sha256, await sha256File(file));
  assert.equal(json.bytes, size);
  assert.equal(json.chunks, 50);
  assert.equal(json.retransmittedChunks, 0);
  assert.equal(json.attempts, 1);
  assert.equal(typeof json.seconds, "number");
  assert.ok(json.seconds >= 0);
  assert.deepEqual(await listDir(tmp.path), ["big.bin", "copy.bin", "srv"]);
  const status = await server.stop();
  assert.equal(status.code, 0, `server did not stop cleanly:\n${server.log()}`);
  assertLogFormat(server.log());
});

Deno.test("send, get and list agree with sha256sum", async () => {
  await using tmp = await tempDir();
  const file = tmp.join("data.bin");
  const size = 300 * 1024 + 7;
  await writeRandomFile(file, size);
  const expected = await sha256sum(file);
  await using server = await spawnServer([
    "--dir",
    tmp.join("srv"),
    "--chunk-size",
    "65536",
  ]);
  const port = ["--port", String(server.port), ...HOST];

  const sent = await runCli(["send", file, ...port], { cwd: tmp.path });
  assert.equal(sent.code, 0, sent.stderr);
  assert.equal(sent.stdout.trim(), `${expected}  ${file}`);

  const out = tmp.join("fetched.bin");
  const got = await runCli(["get", "data.bin", "--out", out, ...port], {
    cwd: tmp.path,
  });
  assert.equal(got.code, 0, got.stderr);
  assert.ok(await sameBytes(file, out), "get returned different bytes");
  assert.equal(await sha256sum(out), expected);
  assert.equal(got.stdout.trim(), `${expected}  ${out}`);

  const listedJson = await runCli(["list", "--json", ...port]);
  assert.equal(listedJson.code, 0, listedJson.stderr);
  const { files } = JSON.parse(listedJson.stdout);
  assert.equal(files.length, 1);
  assert.equal(files[0].name, "data.bin");
  assert.equal(files[0].size, size);
  assert.equal(files[0].sha256, expected);

  const listed = await runCli(["list", ...port]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(lines(listed.stdout).map((l) => l.split(/\s+/)), [
    [expected, String(size), "data.bin"],
  ]);
});

Deno.test("a server that keeps damaging chunks makes transfers fail cleanly", async (t) => {
  await using tmp = await tempDir();
  const file = tmp.join("small.bin");
  await writeRandomFile(file, 64 * 1024);
  await using server = await spawnServer([
    "--dir",
    tmp.join("srv"),
    "--chunk-size",
    "1024",
    "--simulate-errors",
    "--error-rate",
    "0.9",
  ]);
  const port = ["--port", String(server.port), ...HOST];
  const precious = "precious bytes, not to be touched\n";

  await t.step(
    "client --max-retries 1 exits 1 and writes nothing at --out",
    async () => {
      await Deno.mkdir(tmp.join("round"));
      const out = tmp.join("round", "copy.bin");
      const result = await runCli([
        "client",
        "--file",
        file,
        "--out",
        out,
        "--max-retries",
        "1",
        "--quiet",
        ...port,
      ], { cwd: tmp.path });
      assert.equal(result.code, 1, result.stderr);
      const message = failureMessage(result.stderr);
      assert.match(message, /missing/);
      assert.match(message, /sequence numbers \[\d/);
      assert.match(message, /\d+ attempt/);
      // Only the resumable part file (and its state) may sit beside --out.
      const left = await listDir(tmp.join("round"));
      assert.ok(!left.includes("copy.bin"), `found ${out}`);
      for (const name of left) {
        assert.match(name, /^copy\.bin\.ftv-(part|state)$/);
      }
    },
  );

  await t.step(
    "get that runs out of retries leaves an existing --out untouched",
    async () => {
      const sent = await runCli(["send", file, "--quiet", ...port]);
      assert.equal(sent.code, 0, sent.stderr);
      const out = tmp.join("kept.bin");
      await Deno.writeTextFile(out, precious);
      const result = await runCli([
        "get",
        "small.bin",
        "--out",
        out,
        "--max-retries",
        "1",
        "--quiet",
        ...port,
      ]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(failureMessage(result.stderr), /missing/);
      assert.equal(await Deno.readTextFile(out), precious);
    },
  );

  await t.step(
    "get of a missing name leaves an existing --out untouched",
    async () => {
      const out = tmp.join("kept2.bin");
      await Deno.writeTextFile(out, precious);
      const result = await runCli([
        "get",
        "no-such-file.bin",
        "--out",
        out,
        "--quiet",
        ...port,
      ]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(failureMessage(result.stderr), /no-such-file\.bin/);
      assert.equal(await Deno.readTextFile(out), precious);
      assert.ok(
        !(await listDir(tmp.path)).some((n) => n.startsWith("kept2.bin.")),
      );
    },
  );
});

Deno.test("client exits 1 with 'Cannot connect' when nobody listens", async () => {
  await using tmp = await tempDir();
  const file = tmp.join("f.bin");
  await writeRandomFile(file, 1000);
  const port = unusedPort();
  const result = await runCli([
    "client",
    "--file",
    file,
    "--port",
    String(port),
    ...HOST,
    "--out",
    tmp.join("out.bin"),
  ], { cwd: tmp.path, timeoutMs: 20_000 });
  assert.equal(result.code, 1, result.stderr);
  // The client may retry with backoff, but must give up within seconds.
  assert.ok(result.ms < 10_000, `took ${Math.round(result.ms)} ms`);
  assert.match(
    failureMessage(result.stderr),
    new RegExp(`Cannot connect to 127\\.0\\.0\\.1:${port}`),
  );
  assert.deepEqual(await listDir(tmp.path), ["f.bin"]);
});

Deno.test("client exits 2 naming a --file that does not exist", async () => {
  await using tmp = await tempDir();
  const missing = tmp.join("nope", "missing.bin");
  const result = await runCli([
    "client",
    "--file",
    missing,
    "--port",
    String(unusedPort()),
    ...HOST,
  ], { cwd: tmp.path });
  assert.equal(result.code, 2, result.stderr);
  assert.ok(assertOneLineMessage(result.stderr).includes(missing));
});

Deno.test("an unknown flag exits 2 with one line and no stack trace", async (t) => {
  for (const command of ["client", "send", "get", "list", "server", "demo"]) {
    await t.step(command, async () => {
      const result = await runCli([command, "--no-such-flag"]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(assertOneLineMessage(result.stderr), /--no-such-flag/);
      assert.equal(result.stdout, "");
    });
  }
});

Deno.test("a bad --port value exits 2", async (t) => {
  await using tmp = await tempDir();
  const file = tmp.join("f.bin");
  await writeRandomFile(file, 10);
  for (const port of ["abc", "70000", "-1", "1.5", "", "0"]) {
    await t.step(`client --port ${JSON.stringify(port)}`, async () => {
      const result = await runCli(["client", "--file", file, "--port", port], {
        cwd: tmp.path,
      });
      assert.equal(result.code, 2, result.stderr);
      assertOneLineMessage(result.stderr);
    });
  }
  await t.step('server --port "abc"', async () => {
    const result = await runCli([
      "server",
      ...HOST,
      "--port",
      "abc",
      "--dir",
      tmp.join("srv"),
    ]);
    assert.equal(result.code, 2, result.stderr);
    assertOneLineMessage(result.stderr);
    assert.ok(!(await listDir(tmp.path)).includes("srv"));
  });
});

/** An {@linkcode Io} that keeps what a command writes. */
function captureIo(): Io & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (text) => stdout.push(text),
    err: (text) => stderr.push(text),
  };
}

/** Every flag of every command, with the command's name. */
const TABLE = Object.entries(COMMANDS).flatMap(([command, { flags }]) =>
  Object.entries(flags).map(([name, flag]) => ({
    command,
    name,
    flag: flag as Flag<unknown>,
  }))
);

/** A value each kind of flag refuses, as it is written on the command line. */
const BAD: Record<FlagKind, (name: string) => string[]> = {
  boolean: (name) => [`--${name}=x`],
  string: (name) => [`--${name}=`],
  integer: (name) => [`--${name}`, "x"],
  bytes: (name) => [`--${name}`, "12 parsecs"],
  rate: (name) => [`--${name}`, "1.5"],
  seconds: (name) => [`--${name}`, "0"],
  enum: (name) => [`--${name}`, "sideways"],
  shape: (name) => [`--${name}`, "16+0"],
  list: (name) => [`--${name}`, "a,,b"],
};

Deno.test("every flag in the table appears in its command's --help", async (t) => {
  for (const [command, { flags }] of Object.entries(COMMANDS)) {
    await t.step(command, async () => {
      const io = captureIo();
      assert.equal(await main([command, "--help"], io), 0);
      const help = io.stdout.join("\n");
      for (const [name, flag] of Object.entries(flags)) {
        const label = flag.arg ? `--${name} ${flag.arg}` : `--${name}`;
        assert.ok(help.includes(`  ${label} `), `${label} missing:\n${help}`);
      }
    });
  }
});

Deno.test("valuesOf() refuses a bad value of every flag with a UsageError naming it", async (t) => {
  for (const { command, name, flag } of TABLE) {
    if (flag.kind === "boolean") continue;
    await t.step(`${command} --${name}`, () => {
      const [, raw = ""] = BAD[flag.kind](name);
      const flags = { [name]: flag };
      assert.throws(() => valuesOf(flags, { [name]: raw }), (error) => {
        assert.ok(error instanceof UsageError, String(error));
        assert.match(error.message, new RegExp(`--${name}\\b`));
        return true;
      });
    });
  }
});

Deno.test("a bad value for each kind of flag exits 2 with one 'ftv:' line", async (t) => {
  const kinds = new Map<FlagKind, { command: string; name: string }>();
  for (const { command, name, flag } of TABLE) {
    if (!kinds.has(flag.kind)) kinds.set(flag.kind, { command, name });
  }
  assert.equal(kinds.size, Object.keys(BAD).length, "a kind has no flag");
  for (const [kind, { command, name }] of kinds) {
    const args = [command, ...BAD[kind](name)];
    await t.step(`${kind}: ftv ${args.join(" ")}`, async () => {
      const result = await runCli(args);
      assert.equal(result.code, 2, result.stderr);
      const message = assertOneLineMessage(result.stderr);
      assert.match(message, new RegExp(`^ftv: .*--${name}\\b`));
      assert.equal(result.stdout, "");
    });
  }
});

Deno.test("send checks its PATHs and names before the library sees them", async (t) => {
  await using tmp = await tempDir();
  await Deno.mkdir(tmp.join("one"));
  await Deno.mkdir(tmp.join("two"));
  await Deno.writeTextFile(tmp.join("one", "a.txt"), "1");
  await Deno.writeTextFile(tmp.join("two", "a.txt"), "2");
  const cases: [string, string[], RegExp][] = [
    [
      "two PATHs with one base name",
      [tmp.join("one", "a.txt"), tmp.join("two", "a.txt")],
      /two entries named "a\.txt"/,
    ],
    [
      "--as with several PATHs",
      [tmp.join("one"), tmp.join("two"), "--as", "both"],
      /--as takes one PATH/,
    ],
    [
      "--as naming a path outside the store",
      [tmp.join("one"), "--as", "../up"],
      /as "\.\.\/up": component "\.\."/,
    ],
  ];
  for (const [what, args, expected] of cases) {
    await t.step(what, async () => {
      const result = await runCli([
        "send",
        ...args,
        "--port",
        String(unusedPort()),
        ...HOST,
      ]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(assertOneLineMessage(result.stderr), expected);
    });
  }
});

Deno.test("a TypeError from the library is a failure (exit 1), not a usage error", async (t) => {
  await using tmp = await tempDir();
  await Deno.mkdir(tmp.join("tree"));
  await Deno.writeTextFile(tmp.join("tree", "a.txt"), "a");
  const connect = FtvClient.connect;
  FtvClient.connect = () => Promise.reject(new TypeError("a bug, not usage"));
  try {
    for (
      const args of [
        ["send", tmp.join("tree")],
        ["list"],
      ]
    ) {
      await t.step(args[0]!, async () => {
        const io = captureIo();
        const code = await main([
          ...args,
          "--port",
          String(unusedPort()),
          ...HOST,
          "--quiet",
        ], io);
        assert.equal(code, 1);
        assert.deepEqual(io.stderr, ["ftv: a bug, not usage"]);
      });
    }
  } finally {
    FtvClient.connect = connect;
  }
  assert.deepEqual(failureOf(new RangeError("too big"), "server"), {
    code: 1,
    line: "ftv: too big",
  });
});
