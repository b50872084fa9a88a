/**
 * What a user meets every day: the progress bar on a terminal and its
 * absence in a pipe, `--progress json` events, per-chunk compression end to
 * end and as a unit, and `ftv hash` next to `sha256sum`.
 */

import assert from "node:assert/strict";
import { gzipSync, zstdCompressSync } from "node:zlib";
import {
  ChunkCompressor,
  chunkSizeFor,
  COMPRESSION_FLAG,
  decodeChunk,
} from "../engine/compression.ts";
import { formatDuration } from "../base/clock.ts";
import { ProgressReporter } from "../cli/progress.ts";
import {
  type CliResult,
  denoArgs,
  hasCommand,
  lines,
  runCli,
  sameBytes,
  sha256File,
  spawnServer,
  spawnWithDeadline,
  tempDir,
  writeRandomFile,
} from "./test_util.ts";
import { formatBytes } from "../base/bytes.ts";
import type { ProgressEvent } from "../engine/transfer.ts";

const HOST = ["--host", "127.0.0.1"];
const MiB = 1024 * 1024;
/**
 * The CLI's grant for these tests. `--no-prompt` matters on a terminal: there
 * Deno would otherwise stop and ask for the `FTV_TOKEN` read.
 */
const PERMISSIONS = ["--allow-net", "--allow-read", "--allow-write"];
/** Longest the terminal run may take before it is killed. */
const TERMINAL_TIMEOUT_MS = 30_000;

/** What the bar writes before each redraw: carriage return, erase line. */
const CLEAR_LINE = "\r\x1b[2K";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Whether util-linux `script` (which `-qec CMD FILE` needs) is here. */
async function hasUtilLinuxScript(): Promise<boolean> {
  if (!(await hasCommand("script"))) return false;
  const { stdout } = await new Deno.Command("script", {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  return decoder.decode(stdout).includes("util-linux");
}

const HAS_SCRIPT = await hasUtilLinuxScript();
if (!HAS_SCRIPT) {
  console.warn(
    "everyday_test.ts: util-linux `script` not found; " +
      "skipping the progress bar test, which needs a pseudo-terminal",
  );
}

function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * Runs `ftv <args>` with stdin, stdout and stderr on a pseudo-terminal
 * (`script -qec`), and returns everything it wrote there.
 */
function runInTerminal(args: string[]): Promise<CliResult> {
  const command = [Deno.execPath(), ...denoArgs(PERMISSIONS), ...args]
    .map(shellQuote).join(" ");
  return spawnWithDeadline("script", ["-qec", command, "/dev/null"], {
    timeoutMs: TERMINAL_TIMEOUT_MS,
    label: `script ${command}`,
  }).result;
}

/**
 * Writes about `bytes` of log-like text (timestamps, levels, a few phrases):
 * the kind of file compression is for. Deterministic.
 */
async function writeLogFile(path: string, bytes: number): Promise<void> {
  const messages = [
    "GET /api/items 200",
    "POST /api/login 200",
    "cache miss for user profile",
    "db query ok",
    "slow query on orders table",
    "request handled",
    "GET /healthz 200",
    "session renewed",
  ];
  const levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN"];
  let seed = 1;
  const pick = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 16) % n;
  };
  let time = Date.UTC(2026, 0, 1);
  const parts: string[] = [];
  for (let size = 0; size < bytes;) {
    time += pick(8);
    const line = `${new Date(time).toISOString()} ${levels[pick(5)]} [worker-${
      pick(4)
    }] ${messages[pick(8)]} in ${pick(30)} ms\n`;
    parts.push(line);
    size += line.length;
  }
  await Deno.writeTextFile(path, parts.join(""));
}

/** `size` bytes of text that compresses well. */
function compressible(size: number): Uint8Array {
  const line = encoder.encode("2026-01-01T00:00:00.000Z INFO request ok\n");
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += line.length) {
    out.set(line.subarray(0, Math.min(line.length, size - at)), at);
  }
  return out;
}

/** `size` random bytes, which no compressor shrinks. */
function random(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(size, at + 65536)));
  }
  return out;
}

/** `bytes` as a plain Uint8Array (node:zlib returns Buffers), for deepEqual. */
function plain(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** The `--json` result object: the last stdout line. */
function resultOf(result: CliResult): Record<string, unknown> {
  assert.equal(result.code, 0, result.stderr);
  const all = lines(result.stdout);
  return JSON.parse(all[all.length - 1]!);
}

// ---------------------------------------------------------------------------
// Progress on a terminal and in a pipe

Deno.test({
  name: "send draws a progress bar on a terminal and none in a pipe",
  ignore: !HAS_SCRIPT,
  async fn() {
    await using tmp = await tempDir();
    const file = tmp.join("big.bin");
    const size = 24 * MiB;
    await writeRandomFile(file, size);
    const sha = await sha256File(file);
    await Deno.mkdir(tmp.join("srv"));
    await using server = await spawnServer([
      "--dir",
      tmp.join("srv"),
      "--no-fsync",
    ]);
    // 24 MiB at 16 MiB/s: about 1.5 s, long enough for a dozen redraws.
    const args = [
      "send",
      file,
      ...HOST,
      "--port",
      String(server.port),
      "--limit-rate",
      "16M",
    ];

    const terminal = await runInTerminal(args);
    assert.equal(terminal.code, 0, terminal.stdout);
    const screen = terminal.stdout;
    // Every redraw starts with CLEAR_LINE: carriage return, erase the line.
    const drawn = screen.split(CLEAR_LINE).slice(1);
    const bars = drawn
      .map((text) => text.match(/^big\.bin (\[[#.]+\]) +(\d+)% [^\r\n]+$/))
      .filter((match) => match !== null);
    assert.ok(bars.length >= 3, `expected bar redraws, got:\n${screen}`);
    const percents = bars.map((bar) => Number(bar[2]));
    for (let i = 1; i < percents.length; i++) {
      assert.ok(percents[i]! >= percents[i - 1]!, `bar went back: ${percents}`);
    }
    assert.equal(percents[percents.length - 1], 100);
    assert.ok(
      bars.some((bar) => /^\[#+\.+\]$/.test(bar[1]!)),
      `no partly filled bar among:\n${bars.map((bar) => bar[0]).join("\n")}`,
    );
    assert.match(bars[bars.length - 1]![0], /24\.0 MiB\/24\.0 MiB/);
    // The bar is cleared before the summary; the terminal turns \n into \r\n.
    assert.match(
      drawn[drawn.length - 1]!,
      /^big\.bin: 24\.0 MiB in \d+\.\d\d s \([^)]+\/s\), 24\.0 MiB on the wire, 0 chunk\(s\) resent, SHA-256 verified\r\n/,
    );
    assert.ok(screen.includes(`${sha}  ${file}\r\n`), screen);
    assert.ok(
      !screen.includes(" - INFO - "),
      `INFO lines tore the bar:\n${screen}`,
    );

    const piped = await runCli([...args, "--as", "again.bin"], {
      permissions: PERMISSIONS,
    });
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, `${sha}  ${file}\n`);
    assert.ok(!piped.stdout.includes("\r"));
    assert.ok(!piped.stderr.includes("\r"), piped.stderr);
    assert.ok(!piped.stderr.includes("%"), piped.stderr);
    assert.equal(await sha256File(tmp.join("srv", "again.bin")), sha);
  },
});

Deno.test("send --progress json prints progress events then one done event", async () => {
  await using tmp = await tempDir();
  const file = tmp.join("data.bin");
  const size = 8 * MiB;
  await writeRandomFile(file, size);
  await Deno.mkdir(tmp.join("srv"));
  await using server = await spawnServer([
    "--dir",
    tmp.join("srv"),
    "--no-fsync",
  ]);

  const result = await runCli([
    "send",
    file,
    ...HOST,
    "--port",
    String(server.port),
    "--limit-rate",
    "32M",
    "--progress",
    "json",
    "--json",
  ]);

  assert.equal(result.code, 0, result.stderr);
  const parsed = lines(result.stdout).map((line) => JSON.parse(line));
  const events = parsed.filter((item) => "event" in item);
  const others = parsed.filter((item) => !("event" in item));
  assert.equal(others.length, 1, "expected one result object");
  assert.equal(others[0].sha256, await sha256File(file));
  assert.ok(events.length >= 3, result.stdout);
  const kinds = events.map((event) => event.event);
  assert.ok(
    kinds.slice(0, -1).every((kind) => kind === "progress"),
    `events out of order: ${kinds}`,
  );
  assert.equal(kinds[kinds.length - 1], "done");
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i].bytes >= events[i - 1].bytes, "bytes went back");
  }
  for (const event of events) {
    assert.equal(event.name, "data.bin");
    assert.equal(event.total, size);
    assert.equal(typeof event.bytesPerSecond, "number");
    assert.equal(typeof event.seconds, "number");
  }
  const done = events[events.length - 1];
  assert.equal(done.bytes, size);
  assert.equal(done.total, size);
});

// ---------------------------------------------------------------------------
// Compression end to end

Deno.test("send and get compress log text and never expand random data", async (t) => {
  await using tmp = await tempDir();
  const text = tmp.join("app.log");
  await writeLogFile(text, 20 * MiB);
  const textSize = (await Deno.stat(text)).size;
  const textSha = await sha256File(text);
  await Deno.mkdir(tmp.join("srv"));
  await using server = await spawnServer([
    "--dir",
    tmp.join("srv"),
    "--no-fsync",
  ]);
  const connect = [...HOST, "--port", String(server.port), "--json"];

  await t.step("auto (the default) shrinks log text below 15%", async () => {
    const json = resultOf(await runCli(["send", text, ...connect]));
    assert.equal(json.bytes, textSize);
    // Text that compresses travels in 4 MiB chunks: more for zstd to match.
    assert.equal(json.chunks, Math.ceil(textSize / (4 * MiB)));
    assert.ok(
      (json.wireBytes as number) < textSize * 0.15,
      `${json.wireBytes} bytes on the wire for ${textSize}`,
    );
    assert.equal(await sha256File(tmp.join("srv", "app.log")), textSha);
  });

  await t.step("auto sends random data without expanding it", async () => {
    const file = tmp.join("noise.bin");
    const size = 16 * MiB;
    await writeRandomFile(file, size);
    const json = resultOf(
      await runCli(["send", file, ...connect, "--compress", "auto"]),
    );
    assert.equal(json.bytes, size);
    assert.equal(json.chunks, size / MiB, "random data keeps 1 MiB chunks");
    const wire = json.wireBytes as number;
    assert.ok(wire >= size && wire <= size * 1.01, `${wire} for ${size}`);
    assert.equal(
      await sha256File(tmp.join("srv", "noise.bin")),
      await sha256File(file),
    );
  });

  for (const mode of ["gzip", "zstd"]) {
    await t.step(
      `--compress ${mode} verifies and shrinks log text`,
      async () => {
        const name = `app-${mode}.log`;
        const json = resultOf(
          await runCli([
            "send",
            text,
            ...connect,
            "--compress",
            mode,
            "--as",
            name,
          ]),
        );
        assert.equal(json.sha256, textSha);
        assert.ok(
          (json.wireBytes as number) < textSize * 0.15,
          `${json.wireBytes} bytes on the wire for ${textSize}`,
        );
        assert.equal(await sha256File(tmp.join("srv", name)), textSha);
      },
    );
  }

  await t.step(
    "get brings log text back identical, compressed on the wire",
    async () => {
      const out = tmp.join("back.log");
      const json = resultOf(
        await runCli(["get", "app.log", ...connect, "--out", out]),
      );
      assert.ok(await sameBytes(text, out), "the copy differs");
      assert.equal(json.sha256, textSha);
      assert.equal(json.chunks, Math.ceil(textSize / (4 * MiB)));
      assert.ok(
        (json.wireBytes as number) < textSize * 0.15,
        `${json.wireBytes} bytes on the wire for ${textSize}`,
      );
    },
  );
});

// ---------------------------------------------------------------------------
// compression.ts

Deno.test({
  name:
    "chunkSizeFor() grows chunks only for data that will be compressed and shrinks",
  permissions: "none",
  fn() {
    const text = compressible(64 * 1024);
    const noise = random(64 * 1024);
    assert.equal(chunkSizeFor(text, "auto", MiB, 16 * MiB), 4 * MiB);
    assert.equal(chunkSizeFor(text, "gzip", MiB, 16 * MiB), 4 * MiB);
    assert.equal(chunkSizeFor(text, "none", MiB, 16 * MiB), MiB);
    assert.equal(chunkSizeFor(noise, "auto", MiB, 16 * MiB), MiB);
    assert.equal(chunkSizeFor(text, "zstd", 8 * MiB, 16 * MiB), 16 * MiB);
    assert.equal(chunkSizeFor(new Uint8Array(0), "auto", MiB, 16 * MiB), MiB);
  },
});

Deno.test({
  name: "decodeChunk() round-trips what ChunkCompressor encodes",
  permissions: "none",
  async fn(t) {
    const text = compressible(MiB);
    const noise = random(MiB);
    for (const mode of ["zstd", "gzip"] as const) {
      await t.step(mode, () => {
        const compressor = new ChunkCompressor(mode);
        const encoded = compressor.encode(text);
        assert.equal(encoded.flags, COMPRESSION_FLAG[mode]);
        assert.ok(encoded.payload.length < text.length / 10);
        assert.deepEqual(
          plain(decodeChunk(encoded.payload, encoded.flags, text.length)),
          text,
        );
        const tail = compressible(1000);
        const small = compressor.encode(tail);
        assert.equal(small.flags, COMPRESSION_FLAG[mode]);
        assert.deepEqual(
          plain(decodeChunk(small.payload, small.flags, tail.length)),
          tail,
        );
        // What does not shrink travels raw, and decodes as itself.
        const raw = compressor.encode(noise);
        assert.equal(raw.flags, 0);
        assert.equal(raw.payload, noise);
        assert.deepEqual(
          plain(decodeChunk(raw.payload, 0, noise.length)),
          noise,
        );
      });
    }
    await t.step("none", () => {
      const encoded = new ChunkCompressor("none").encode(text);
      assert.equal(encoded.flags, 0);
      assert.equal(encoded.payload, text);
    });
    await t.step("empty chunk", () => {
      const empty = new Uint8Array(0);
      const encoded = new ChunkCompressor("zstd").encode(empty);
      assert.equal(encoded.flags, 0);
      assert.deepEqual(plain(decodeChunk(encoded.payload, 0, 0)), empty);
    });
  },
});

Deno.test({
  name: "decodeChunk() throws RangeError for bad flags, damage and wrong sizes",
  permissions: "none",
  async fn(t) {
    const text = compressible(256 * 1024);
    const zstd = new ChunkCompressor("zstd").encode(text).payload;
    const gzip = new ChunkCompressor("gzip").encode(text).payload;
    const flip = (bytes: Uint8Array, at: number) => {
      const copy = bytes.slice();
      copy[at]! ^= 0xff;
      return copy;
    };
    const cases: [string, Uint8Array, number, number][] = [
      ["unknown flags 3", text, 3, text.length],
      ["unknown flags 255", text, 255, text.length],
      ["both flags", zstd, 3, text.length],
      ["zstd damaged header", flip(zstd, 0), 1, text.length],
      ["zstd truncated", zstd.subarray(0, zstd.length - 8), 1, text.length],
      ["gzip damaged header", flip(gzip, 0), 2, text.length],
      ["gzip damaged body", flip(gzip, gzip.length >> 1), 2, text.length],
      ["gzip truncated", gzip.subarray(0, gzip.length - 8), 2, text.length],
      ["gzip bytes under the zstd flag", gzip, 1, text.length],
      ["zstd decodes short", zstd, 1, text.length + 1],
      ["raw chunk of the wrong size", text, 0, text.length - 1],
    ];
    for (const [name, payload, flags, expected] of cases) {
      await t.step(name, () => {
        assert.throws(
          () => decodeChunk(payload, flags, expected),
          (error: unknown) =>
            error instanceof RangeError &&
            error.message.startsWith("Cannot decode chunk: "),
        );
      });
    }
  },
});

Deno.test({
  name: "decodeChunk() refuses a bomb without inflating it",
  permissions: "none",
  async fn(t) {
    const declared = MiB;
    await t.step("zstd: 10 MiB of zeros declared as 1 MiB", () => {
      const bomb = zstdCompressSync(new Uint8Array(10 * MiB));
      assert.throws(
        () => decodeChunk(bomb, COMPRESSION_FLAG.zstd, declared),
        RangeError,
      );
    });
    await t.step("gzip: 10 MiB of zeros declared as 1 MiB", () => {
      const bomb = gzipSync(new Uint8Array(10 * MiB));
      assert.throws(
        () => decodeChunk(bomb, COMPRESSION_FLAG.gzip, declared),
        RangeError,
      );
    });
    await t.step("zstd: 1000 MiB in 100 frames barely moves memory", () => {
      // Inflated in full this costs about 2 GiB; bounded, a few MiB.
      const frame = zstdCompressSync(new Uint8Array(10 * MiB));
      const bomb = new Uint8Array(frame.length * 100);
      for (let i = 0; i < 100; i++) bomb.set(frame, i * frame.length);
      const before = Deno.memoryUsage().rss;
      assert.throws(
        () => decodeChunk(bomb, COMPRESSION_FLAG.zstd, declared),
        RangeError,
      );
      const grown = Deno.memoryUsage().rss - before;
      assert.ok(grown < 128 * MiB, `memory grew by ${formatBytes(grown)}`);
    });
  },
});

Deno.test({
  name: 'ChunkCompressor("auto") sends random data raw and backs off',
  permissions: "none",
  fn() {
    const text = compressible(MiB);
    const noise = random(MiB);
    const compressor = new ChunkCompressor("auto");
    assert.equal(compressor.encode(text).flags, COMPRESSION_FLAG.zstd);
    const miss = compressor.encode(noise);
    assert.equal(miss.flags, 0);
    assert.equal(miss.payload, noise);
    // Right after a miss the next chunk is not even tried, however good.
    const skipped = compressor.encode(text);
    assert.equal(skipped.flags, 0);
    assert.equal(skipped.payload, text);
    assert.equal(compressor.encode(text).flags, COMPRESSION_FLAG.zstd);
    // A hit resets the backoff; misses in a row double it: skip 1, then 2.
    assert.equal(compressor.encode(noise).flags, 0);
    assert.equal(compressor.encode(text).flags, 0);
    assert.equal(compressor.encode(noise).flags, 0);
    assert.equal(compressor.encode(text).flags, 0);
    assert.equal(compressor.encode(text).flags, 0);
    assert.equal(compressor.encode(text).flags, COMPRESSION_FLAG.zstd);
    assert.equal(compressor.encode(text).flags, COMPRESSION_FLAG.zstd);
  },
});

Deno.test({
  name: 'ChunkCompressor("auto") backs off at most 64 chunks',
  permissions: "none",
  fn() {
    const compressor = new ChunkCompressor("auto");
    const noise = random(64 * 1024);
    for (let i = 0; i < 500; i++) {
      assert.equal(compressor.encode(noise).flags, 0);
    }
    const text = compressible(64 * 1024);
    let raw = 0;
    while (compressor.encode(text).flags === 0) {
      raw++;
      assert.ok(raw <= 64, "still backing off after 64 compressible chunks");
    }
    assert.ok(raw >= 1, "a compressible chunk right after misses was tried");
    // Below 64 KiB zstd's set-up costs more than it saves: auto sends raw.
    const small = new ChunkCompressor("auto").encode(compressible(1000));
    assert.equal(small.flags, 0);
  },
});

// ---------------------------------------------------------------------------
// ftv hash

Deno.test("hash prints what sha256sum prints", async () => {
  await using tmp = await tempDir();
  await Deno.writeTextFile(tmp.join("a.txt"), "hello\n");
  await Deno.writeFile(tmp.join("empty"), new Uint8Array(0));
  await writeRandomFile(tmp.join("b.bin"), 3 * MiB + 17);
  const names = ["a.txt", "b.bin", "empty"];

  const result = await runCli(["hash", ...names], { cwd: tmp.path });

  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stderr, "");
  assert.equal(result.stdout, await expectedSums(tmp.path, names));
});

Deno.test("hash reports a missing path in one line and prints the others", async () => {
  await using tmp = await tempDir();
  await Deno.writeTextFile(tmp.join("a.txt"), "hello\n");
  await writeRandomFile(tmp.join("b.bin"), 100_000);

  const result = await runCli(["hash", "a.txt", "no-such-file", "b.bin"], {
    cwd: tmp.path,
  });

  assert.equal(result.code, 1);
  assert.equal(
    result.stdout,
    await expectedSums(tmp.path, ["a.txt", "b.bin"]),
  );
  const messages = lines(result.stderr);
  assert.equal(messages.length, 1, result.stderr);
  assert.match(messages[0]!, /^ftv: .*"no-such-file"/);
});

/** What `sha256sum NAMES...` prints in `cwd` (natively when it is absent). */
async function expectedSums(cwd: string, names: string[]): Promise<string> {
  if (await hasCommand("sha256sum")) {
    const output = await new Deno.Command("sha256sum", {
      args: names,
      cwd,
      stdin: "null",
      stderr: "inherit",
    }).output();
    assert.equal(output.code, 0);
    return decoder.decode(output.stdout);
  }
  let text = "";
  for (const name of names) {
    text += `${await sha256File(`${cwd}/${name}`)}  ${name}\n`;
  }
  return text;
}

// ---------------------------------------------------------------------------
// progress.ts

Deno.test({
  name: "formatBytes() uses binary units with one decimal",
  permissions: "none",
  async fn(t) {
    const cases: [number, string][] = [
      [0, "0 B"],
      [1, "1 B"],
      [1023, "1023 B"],
      [1024, "1.0 KiB"],
      [1536, "1.5 KiB"],
      [10 * MiB, "10.0 MiB"],
      [1.5 * 1024 * MiB, "1.5 GiB"],
      [2 * 1024 * 1024 * MiB, "2.0 TiB"],
      [2048 * 1024 * 1024 * MiB, "2048.0 TiB"],
      // Rates are fractions: whole bytes below a KiB.
      [512.4, "512 B"],
      [0.25, "0 B"],
    ];
    for (const [bytes, text] of cases) {
      await t.step(`${bytes} -> ${text}`, () => {
        assert.equal(formatBytes(bytes), text);
      });
    }
  },
});

Deno.test({
  name: "formatDuration() prints m:ss or h:mm:ss",
  permissions: "none",
  async fn(t) {
    const cases: [number, string][] = [
      [0, "0:00"],
      [5, "0:05"],
      [59.4, "0:59"],
      [59.6, "1:00"],
      [65, "1:05"],
      [3599, "59:59"],
      [3600, "1:00:00"],
      [3661, "1:01:01"],
      [12 * 3600, "12:00:00"],
      [-3, "0:00"],
      [Infinity, "--:--"],
      [NaN, "--:--"],
    ];
    for (const [seconds, text] of cases) {
      await t.step(`${seconds} -> ${text}`, () => {
        assert.equal(formatDuration(seconds), text);
      });
    }
  },
});

function progressEvent(bytes: number, total = 1000): ProgressEvent {
  return { name: "f.bin", bytes, total, retransmittedChunks: 0 };
}

Deno.test({
  name: "ProgressReporter in json mode throttles and always ends at 100%",
  permissions: "none",
  fn() {
    let clock = 1000;
    const written: string[] = [];
    const reporter = new ProgressReporter("json", {
      write: (text) => written.push(text),
      intervalMs: 100,
      now: () => clock,
    });
    reporter.update(progressEvent(0));
    clock = 1050;
    reporter.update(progressEvent(100));
    clock = 1099;
    reporter.update(progressEvent(200));
    clock = 1100;
    reporter.update(progressEvent(300));
    clock = 1150;
    reporter.update(progressEvent(400));
    // The last update shows at once, inside the interval.
    clock = 1160;
    reporter.update(progressEvent(1000));
    clock = 1200;
    reporter.finish("summary for the bar only");

    for (const text of written) assert.match(text, /^[^\n]+\n$/);
    const events = written.map((text) => JSON.parse(text));
    assert.deepEqual(
      events.map((event) => [event.event, event.bytes, event.seconds]),
      [
        ["progress", 0, 0],
        ["progress", 300, 0.1],
        ["progress", 1000, 0.16],
        ["done", 1000, 0.2],
      ],
    );
    assert.equal(events[1].bytesPerSecond, 3000);
    assert.equal(events[3].total, 1000);
    assert.equal(events[3].name, "f.bin");
  },
});

Deno.test({
  name: "ProgressReporter in none mode writes nothing",
  permissions: "none",
  fn() {
    const written: string[] = [];
    const reporter = new ProgressReporter("none", {
      write: (text) => written.push(text),
    });
    reporter.update(progressEvent(500));
    reporter.update(progressEvent(1000));
    reporter.finish("summary");
    assert.deepEqual(written, []);
  },
});

Deno.test({
  name: "ProgressReporter in bar mode clears and redraws around log lines",
  permissions: "none",
  fn() {
    let clock = 0;
    const calls: string[] = [];
    const reporter = new ProgressReporter("bar", {
      write: (text) => calls.push(`bar:${text}`),
      width: 10,
      now: () => clock,
    });
    const sink = reporter.wrapSink((line) => calls.push(`log:${line}`));
    // Nothing drawn yet: log lines pass straight through.
    sink("before");
    assert.deepEqual(calls, ["log:before"]);

    clock = 1000;
    reporter.update(progressEvent(500));
    assert.equal(calls.length, 2);
    const bar = "f.bin [#####.....]  50% 500 B/1000 B 0 B/s ETA --:--";
    assert.equal(calls[1], `bar:${CLEAR_LINE}${bar}`);

    calls.length = 0;
    sink("a warning");
    assert.deepEqual(calls, [
      `bar:${CLEAR_LINE}`,
      "log:a warning",
      `bar:${CLEAR_LINE}${bar}`,
    ]);

    calls.length = 0;
    reporter.finish("f.bin: done, SHA-256 verified");
    assert.deepEqual(calls, [
      `bar:${CLEAR_LINE}`,
      "bar:f.bin: done, SHA-256 verified\n",
    ]);

    // After the summary, log lines are not wrapped any more.
    calls.length = 0;
    sink("after");
    assert.deepEqual(calls, ["log:after"]);
  },
});
