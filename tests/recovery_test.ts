/**
 * The recovery promises, proven with real child processes: every transfer
 * ends verified or fails with a clear message and exit code; nothing wrong
 * ever sits under the final name; a silent peer never holds a client past
 * `--timeout`; and a chunk verified before a crash is never sent again.
 *
 * Kill points are picked by a seeded generator (`FTV_TEST_SEED` replays
 * another set) and reached by watching the receiver's part file grow.
 */

import assert from "node:assert/strict";
import { ChunkBitmap } from "../engine/bitmap.ts";
import {
  encodeControl,
  encodeData,
  FrameReader,
  PROTOCOL_VERSION,
} from "../protocol.ts";
import { PART_SUFFIX, STATE_SUFFIX } from "../protocol/names.ts";
import { Rng } from "../faults/rng.ts";
import {
  type CliProcess,
  type CliResult,
  exists,
  fileSize,
  lines,
  listDir,
  LOG_LINE,
  nextFrame,
  pollUntil,
  runCli,
  type ServiceProcess,
  sha256File,
  spawnCli,
  spawnProxy,
  spawnServer,
  STACK_LINE,
  type TempDir,
  tempDir,
  unusedPort,
  writeAll,
  writeRandomFile,
} from "./test_util.ts";
import { chunkCount } from "../engine/chunks.ts";

const MiB = 1024 * 1024;
const HOST = ["--host", "127.0.0.1"];
const SEED = Number(Deno.env.get("FTV_TEST_SEED") ?? 20261126);
/** Big enough to be killed midway, small enough for CI: ~3 s at the rate below. */
const BIG = 48 * MiB;
const BIG_RATE = "16M";
const DEFAULT_CHUNK = MiB;
/** Lines a server logs once a connection's session has ended (and its part file is suspended). */
const SESSION_ENDED = /Connection with \S+ closed|Closing connection with /;

/** A kill point between 30% and 70% of `size`, drawn from the test's own seeded generator. */
function killPoint(test: number, size: number): number {
  const rng = new Rng(SEED + test);
  return Math.floor(size * (0.3 + 0.4 * rng.next()));
}

/**
 * Waits until the receiver of `path` has written `bytes` of its part file
 * and saved a resume state; fails if `transfer` ends first.
 */
async function watchProgress(
  path: string,
  bytes: number,
  transfer: CliProcess,
): Promise<void> {
  await pollUntil(async () => {
    if (transfer.done) {
      const { code, stderr } = await transfer.result;
      throw new Error(
        `The transfer ended (exit ${code}) before ${bytes} bytes reached ${path}${PART_SUFFIX}\n${stderr}`,
      );
    }
    return ((await fileSize(path + PART_SUFFIX)) ?? 0) >= bytes &&
      await exists(path + STATE_SUFFIX);
  }, { what: `${bytes} bytes in ${path}${PART_SUFFIX}`, timeoutMs: 20_000 });
}

/** Waits until `server` logs a line matching `pattern` after offset `from` of its log. */
async function waitForLog(
  server: ServiceProcess,
  pattern: RegExp,
  from: number,
): Promise<void> {
  await pollUntil(() => pattern.test(server.log().slice(from)), {
    what: `a server log line matching ${pattern}`,
  });
}

/** Chunks the saved resume state of `path` claims as verified. */
async function heldChunks(path: string): Promise<number> {
  const state = JSON.parse(await Deno.readTextFile(path + STATE_SUFFIX));
  const count = chunkCount(state.manifest.size, state.manifest.chunkSize);
  return ChunkBitmap.fromBase64(state.have, count).count;
}

/** The `--json` result of a transfer that must have succeeded. */
function verifiedJson(result: CliResult, expected: string) {
  assert.equal(result.code, 0, `exit ${result.code}\n${result.stderr}`);
  const json = JSON.parse(result.stdout);
  assert.equal(json.sha256, expected);
  return json as {
    sha256: string;
    bytes: number;
    chunks: number;
    retransmittedChunks: number;
    attempts: number;
    resumedChunks: number;
    resumedBytes: number;
    wireBytes: number;
    connections: number;
  };
}

/** A loud failure: exit 1, one `ftv: ` message, log lines otherwise, no stack trace. */
function assertFailedLoudly(result: CliResult): string {
  assert.equal(result.code, 1, `exit ${result.code}\n${result.stderr}`);
  assert.ok(
    !result.stderr.includes(STACK_LINE),
    `stack trace on stderr:\n${result.stderr}`,
  );
  const messages = lines(result.stderr).filter((line) => !LOG_LINE.test(line));
  assert.equal(messages.length, 1, `expected one message:\n${result.stderr}`);
  assert.match(messages[0]!, /^ftv: \S.{10,}/);
  return messages[0]!;
}

/** Part and state files left beside `path`. */
async function leftovers(path: string): Promise<string[]> {
  const found: string[] = [];
  for (const suffix of [PART_SUFFIX, STATE_SUFFIX]) {
    if (await exists(path + suffix)) found.push(path + suffix);
  }
  return found;
}

/** Flags of a slow, patient transfer to `port` that survives a server restart. */
function patientFlags(port: number): string[] {
  return [
    ...HOST,
    "--port",
    String(port),
    "--limit-rate",
    BIG_RATE,
    "--max-retries",
    "8",
    "--retry-delay",
    "0.2",
    "--json",
  ];
}

/**
 * A random `BIG`-byte `big.bin` in `tmp`, its SHA-256, and the server folder
 * `srv`; with `stored`, the server already holds the file as `big.bin`.
 */
async function bigFile(tmp: TempDir, options: { stored?: boolean } = {}) {
  const srv = tmp.join("srv");
  const file = tmp.join("big.bin");
  await writeRandomFile(file, BIG);
  if (options.stored) {
    await Deno.mkdir(srv);
    await Deno.copyFile(file, `${srv}/big.bin`);
  }
  return { srv, file, expected: await sha256File(file) };
}

Deno.test("send resumes after the sending client is killed with SIGKILL", async () => {
  await using tmp = await tempDir();
  const { srv, file, expected } = await bigFile(tmp);
  await using server = await spawnServer(["--dir", srv]);
  const stored = `${srv}/big.bin`;
  const args = [
    "send",
    file,
    ...HOST,
    "--port",
    String(server.port),
    "--limit-rate",
    BIG_RATE,
    "--json",
  ];

  const mark = server.log().length;
  {
    await using first = spawnCli(args);
    await watchProgress(stored, killPoint(1, BIG), first);
    first.kill("SIGKILL");
    assert.notEqual((await first.result).code, 0);
  }
  await waitForLog(server, SESSION_ENDED, mark);
  assert.equal(await exists(stored), false, "a part sits under the final name");
  const held = await heldChunks(stored);
  assert.ok(held > 0, "the server saved no verified chunk");

  const json = verifiedJson(await runCli(args), expected);
  assert.equal(await sha256File(stored), expected);
  assert.equal(json.resumedChunks, held, "verified chunks were lost");
  assert.ok(json.resumedBytes > 0);
  assert.ok(
    json.wireBytes < BIG,
    `sent ${json.wireBytes} bytes again for a ${BIG}-byte file`,
  );
  assert.deepEqual(await leftovers(stored), []);
});

Deno.test("send carries on when the server is killed with SIGKILL and restarted", async () => {
  await using tmp = await tempDir();
  const { srv, file, expected } = await bigFile(tmp);
  const port = unusedPort();
  const serverArgs = ["--dir", srv, "--port", String(port)];
  await using first = await spawnServer(serverArgs);
  const stored = `${srv}/big.bin`;
  await using client = spawnCli([
    "send",
    file,
    ...patientFlags(port),
  ]);

  await watchProgress(stored, killPoint(2, BIG), client);
  first.kill("SIGKILL");
  await first.exited;
  const held = await heldChunks(stored);
  await using second = await spawnServer(serverArgs);

  const json = verifiedJson(await client.result, expected);
  assert.equal(await sha256File(stored), expected);
  assert.ok(json.connections >= 2, `connections: ${json.connections}`);
  assert.ok(json.resumedChunks > 0, "the restarted server resumed nothing");
  assert.ok(json.resumedChunks >= held, "verified chunks were lost");
  assert.match(second.log(), /Receiving big\.bin \(.*, \d+ already held\)/);
  assert.deepEqual(await leftovers(stored), []);
});

Deno.test("get resumes after the receiving client is killed with SIGKILL", async () => {
  await using tmp = await tempDir();
  const { srv, expected } = await bigFile(tmp, { stored: true });
  const out = tmp.join("copy.bin");
  await using server = await spawnServer(["--dir", srv]);
  const args = [
    "get",
    "big.bin",
    "--out",
    out,
    ...HOST,
    "--port",
    String(server.port),
    "--limit-rate",
    BIG_RATE,
    "--json",
  ];

  {
    await using first = spawnCli(args);
    await watchProgress(out, killPoint(3, BIG), first);
    first.kill("SIGKILL");
    assert.notEqual((await first.result).code, 0);
  }
  assert.equal(await exists(out), false, "a part sits under the final name");
  const held = await heldChunks(out);
  assert.ok(held > 0, "the client saved no verified chunk");

  const json = verifiedJson(await runCli(args), expected);
  assert.equal(await sha256File(out), expected);
  assert.equal(json.resumedChunks, held, "verified chunks were lost");
  assert.ok(json.resumedBytes > 0);
  assert.ok(
    json.wireBytes < BIG,
    `took ${json.wireBytes} bytes off the wire for a ${BIG}-byte file`,
  );
  assert.deepEqual(await leftovers(out), []);
});

Deno.test("get carries on when the server is killed with SIGKILL and restarted", async () => {
  await using tmp = await tempDir();
  const { srv, expected } = await bigFile(tmp, { stored: true });
  const out = tmp.join("copy.bin");
  const port = unusedPort();
  const serverArgs = ["--dir", srv, "--port", String(port)];
  await using first = await spawnServer(serverArgs);
  await using client = spawnCli([
    "get",
    "big.bin",
    "--out",
    out,
    ...patientFlags(port),
  ]);

  await watchProgress(out, killPoint(4, BIG), client);
  first.kill("SIGKILL");
  await first.exited;
  await using _second = await spawnServer(serverArgs);

  const json = verifiedJson(await client.result, expected);
  assert.equal(await sha256File(out), expected);
  assert.ok(json.connections >= 2, `connections: ${json.connections}`);
  assert.ok(json.resumedChunks > 0, "the client resumed nothing");
  assert.ok(json.wireBytes < BIG, `wireBytes ${json.wireBytes}`);
  assert.deepEqual(await leftovers(out), []);
});

/** Options every proxied transfer uses: short timeout, enough retries, quick reconnects. */
function proxiedArgs(port: number): string[] {
  return [
    ...HOST,
    "--port",
    String(port),
    "--timeout",
    "2",
    "--max-retries",
    "8",
    "--retry-delay",
    "0.1",
    "--json",
  ];
}

/** The counters a proxy child logs when it stops. */
async function proxyStats(
  proxy: ServiceProcess,
): Promise<Record<string, number>> {
  await proxy.stop();
  const match = proxy.log().match(/Proxy stopped: (\{.*\})/);
  assert.ok(match, `no stats in the proxy log:\n${proxy.log()}`);
  return JSON.parse(match[1]!);
}

Deno.test("send and get through a bit-flipping proxy end verified", async (t) => {
  await using tmp = await tempDir();
  const srv = tmp.join("srv");
  const file = tmp.join("data.bin");
  const out = tmp.join("copy.bin");
  const size = 8 * MiB + 12345;
  await writeRandomFile(file, size);
  const expected = await sha256File(file);
  await using server = await spawnServer(["--dir", srv]);
  // About 6 flips per 8 MiB: every transfer is damaged, most chunks are not.
  await using proxy = await spawnProxy(server.port, [
    "--flip-rate",
    "1e-3",
    "--seed",
    String(SEED),
  ]);
  const damaged = (json: ReturnType<typeof verifiedJson>) =>
    json.retransmittedChunks > 0 || json.connections > 1;

  await t.step("send", async () => {
    const json = verifiedJson(
      await runCli(["send", file, ...proxiedArgs(proxy.port)]),
      expected,
    );
    assert.equal(await sha256File(`${srv}/data.bin`), expected);
    assert.ok(damaged(json), `no repair seen: ${JSON.stringify(json)}`);
  });

  await t.step("get", async () => {
    const json = verifiedJson(
      await runCli([
        "get",
        "data.bin",
        "--out",
        out,
        ...proxiedArgs(proxy.port),
      ]),
      expected,
    );
    assert.equal(await sha256File(out), expected);
    assert.ok(damaged(json), `no repair seen: ${JSON.stringify(json)}`);
  });

  const stats = await proxyStats(proxy);
  assert.ok(
    stats.flipped! > 0,
    `the proxy flipped nothing: ${JSON.stringify(stats)}`,
  );
});

Deno.test("send and get through a proxy that cuts every connection resume to the end", async (t) => {
  await using tmp = await tempDir();
  const srv = tmp.join("srv");
  const file = tmp.join("data.bin");
  const out = tmp.join("copy.bin");
  const size = 8 * MiB + 777;
  await writeRandomFile(file, size);
  const expected = await sha256File(file);
  await using server = await spawnServer(["--dir", srv]);
  // Under 3 chunks per connection: the file needs several.
  await using proxy = await spawnProxy(server.port, [
    "--cut-after",
    String(3 * DEFAULT_CHUNK - 1000),
  ]);

  await t.step("send", async () => {
    const json = verifiedJson(
      await runCli(["send", file, ...proxiedArgs(proxy.port)]),
      expected,
    );
    assert.equal(await sha256File(`${srv}/data.bin`), expected);
    assert.ok(json.connections >= 2, `connections: ${json.connections}`);
    assert.ok(json.resumedChunks > 0, "the last connection resumed nothing");
  });

  await t.step("get", async () => {
    const json = verifiedJson(
      await runCli([
        "get",
        "data.bin",
        "--out",
        out,
        ...proxiedArgs(proxy.port),
      ]),
      expected,
    );
    assert.equal(await sha256File(out), expected);
    assert.ok(json.connections >= 2, `connections: ${json.connections}`);
    assert.ok(json.resumedChunks > 0, "the last connection resumed nothing");
  });

  const stats = await proxyStats(proxy);
  assert.ok(stats.cut! >= 4, `the proxy cut ${stats.cut} connection(s)`);
});

Deno.test("a damaged or lost resume state makes the server re-verify its part file", async (t) => {
  await using tmp = await tempDir();
  const srv = tmp.join("srv");
  const size = 16 * MiB;
  await using server = await spawnServer(["--dir", srv]);
  const damages: Array<[string, (statePath: string) => Promise<void>]> = [
    ["garbage", async (statePath) => {
      const garbage = crypto.getRandomValues(new Uint8Array(300));
      await Deno.writeFile(statePath, garbage);
    }],
    ["truncated to half", async (statePath) => {
      const text = await Deno.readTextFile(statePath);
      await Deno.writeTextFile(statePath, text.slice(0, text.length >> 1));
    }],
    ["deleted", (statePath) => Deno.remove(statePath)],
  ];

  for (const [index, [damage, apply]] of damages.entries()) {
    await t.step(`state ${damage}`, async () => {
      const name = `state-${index}.bin`;
      const file = tmp.join(name);
      const stored = `${srv}/${name}`;
      await writeRandomFile(file, size);
      const expected = await sha256File(file);
      const args = ["send", file, ...HOST, "--port", String(server.port)];

      const killed = server.log().length;
      {
        await using first = spawnCli([...args, "--limit-rate", "8M"]);
        await watchProgress(stored, killPoint(10 + index, size), first);
        first.kill("SIGKILL");
        await first.result;
      }
      // The server saves its state when the session ends; damage it after that.
      await waitForLog(server, SESSION_ENDED, killed);
      await apply(stored + STATE_SUFFIX);

      const resumed = server.log().length;
      const json = verifiedJson(await runCli([...args, "--json"]), expected);
      assert.equal(await sha256File(stored), expected);
      const log = server.log().slice(resumed);
      assert.match(log, /re-verifying the part file/);
      const verified = log.match(/Part file re-verified: (\d+) of \d+ chunks/);
      assert.ok(verified, `no re-verification logged:\n${log}`);
      assert.ok(Number(verified[1]) > 0, "re-verification kept no chunk");
      assert.equal(json.resumedChunks, Number(verified[1]));
      assert.deepEqual(await leftovers(stored), []);
    });
  }
});

/** What a fake server does once it has followed its script. */
type Silence = "drain" | "stall";

/**
 * Runs `client` against an in-test server that follows `script` on the
 * first connection, then says nothing more: it keeps reading ("drain") or
 * stops reading too ("stall").
 */
async function againstFakeServer(
  script: (conn: Deno.Conn, reader: FrameReader) => Promise<Silence>,
  client: (port: number) => Promise<CliResult>,
): Promise<CliResult> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const ended = Promise.withResolvers<void>();
  let conn: Deno.Conn | undefined;
  const peer = (async () => {
    try {
      conn = await listener.accept();
      const silence = await script(conn, new FrameReader(conn));
      if (silence === "stall") return await ended.promise;
      const buffer = new Uint8Array(64 * 1024);
      for (let i = 0; i < 1_000_000; i++) {
        if (await conn.read(buffer) === null) return;
      }
    } catch {
      // The client left, or the test closed the socket under us.
    }
  })();
  try {
    return await client((listener.addr as Deno.NetAddr).port);
  } finally {
    ended.resolve();
    listener.close();
    try {
      conn?.close();
    } catch {
      // Already closed.
    }
    await peer;
  }
}

/** Reads the client's hello and answers it, announcing `chunkSize`. */
async function answerHello(
  conn: Deno.Conn,
  reader: FrameReader,
  chunkSize: number,
): Promise<void> {
  const hello = await nextFrame(reader, conn);
  assert.equal(hello?.kind === "control" && hello.message.type, "hello");
  await writeAll(
    conn,
    encodeControl({
      type: "hello",
      version: PROTOCOL_VERSION,
      agent: "silent",
      chunkSize,
    }),
  );
}

/** Reads a `put` and answers `ready` with nothing held. */
async function acceptPut(
  conn: Deno.Conn,
  reader: FrameReader,
  chunkSize: number,
): Promise<void> {
  const put = await nextFrame(reader, conn);
  assert.ok(put?.kind === "control" && put.message.type === "put");
  const count = chunkCount(put.message.size, chunkSize);
  await writeAll(
    conn,
    encodeControl({
      type: "ready",
      transferId: 1,
      have: new ChunkBitmap(count).toBase64(),
    }),
  );
}

Deno.test("a silent server never holds a client past --timeout", async (t) => {
  await using tmp = await tempDir();
  const file = tmp.join("data.bin");
  const size = 4 * MiB;
  await writeRandomFile(file, size);
  const chunkSize = 64 * 1024;
  const client = (args: string[]) => (port: number) =>
    runCli([
      ...args,
      ...HOST,
      "--port",
      String(port),
      "--timeout",
      "1",
      "--max-retries",
      "0",
    ], { timeoutMs: 15_000 });
  const send = client(["send", file]);
  const get = client(["get", "data.bin", "--out", tmp.join("copy.bin")]);
  /** Exit 1 with a message, well before the child's own 15 s limit. */
  const assertGaveUp = (result: CliResult, pattern: RegExp) => {
    assert.match(assertFailedLoudly(result), pattern);
    assert.ok(result.ms < 6000, `took ${Math.round(result.ms)} ms`);
  };

  await t.step("one that accepts and never answers", async () => {
    const result = await againstFakeServer(
      () => Promise.resolve("stall"),
      send,
    );
    assertGaveUp(result, /no data for 1000 ms/);
  });

  await t.step(
    "one that answers hello, takes the chunks and never replies",
    async () => {
      const result = await againstFakeServer(async (conn, reader) => {
        await answerHello(conn, reader, chunkSize);
        await acceptPut(conn, reader, chunkSize);
        return "drain";
      }, send);
      assertGaveUp(result, /no data for 1000 ms/);
    },
  );

  await t.step(
    "one that answers hello, then stops reading mid-upload",
    async () => {
      // More than the kernel's socket buffers hold, so a write must block.
      const large = tmp.join("large.bin");
      await writeRandomFile(large, 32 * MiB);
      const result = await againstFakeServer(async (conn, reader) => {
        await answerHello(conn, reader, chunkSize);
        await acceptPut(conn, reader, chunkSize);
        return "stall";
      }, client(["send", large]));
      assertGaveUp(result, /Cannot write to .*: no progress for 1000 ms/);
    },
  );

  await t.step(
    "one that offers a file, sends part of it and goes quiet",
    async () => {
      const result = await againstFakeServer(async (conn, reader) => {
        await answerHello(conn, reader, chunkSize);
        const request = await nextFrame(reader, conn);
        assert.ok(
          request?.kind === "control" && request.message.type === "get",
        );
        await writeAll(
          conn,
          encodeControl({
            type: "offer",
            transferId: 7,
            name: "data.bin",
            size,
            chunkSize,
            sha256: "0".repeat(64),
            mtimeMs: 0,
          }),
        );
        const ready = await nextFrame(reader, conn);
        assert.ok(ready?.kind === "control" && ready.message.type === "ready");
        const payload = new Uint8Array(chunkSize);
        for (let seq = 0; seq < 3; seq++) {
          await writeAll(conn, encodeData(7, seq, payload));
        }
        return "drain";
      }, get);
      assertGaveUp(result, /no data for 1000 ms/);
      assert.deepEqual(
        (await listDir(tmp.path)).filter((name) => name.startsWith("copy")),
        ["copy.bin.ftv-part", "copy.bin.ftv-state"],
        "the partial download is not kept for a resume, or sits under the final name",
      );
    },
  );
});

Deno.test("a proxy flipping bits at a high rate never leaves a wrong file under the final name", async (t) => {
  await using tmp = await tempDir();
  const srv = tmp.join("srv");
  const file = tmp.join("data.bin");
  const size = MiB + 4321;
  await Deno.mkdir(srv);
  await writeRandomFile(file, size);
  await Deno.copyFile(file, `${srv}/stored.bin`);
  const expected = await sha256File(file);
  // 16 KiB chunks: about one copy in ten is damaged, so runs end either way.
  await using server = await spawnServer([
    "--dir",
    srv,
    "--chunk-size",
    "16384",
  ]);
  await using proxy = await spawnProxy(server.port, [
    "--flip-rate",
    "0.01",
    "--seed",
    String(SEED),
  ]);
  const args = [
    ...HOST,
    "--port",
    String(proxy.port),
    "--timeout",
    "2",
    "--max-retries",
    "1",
    "--retry-delay",
    "0.1",
    "--json",
  ];
  /** Verified, or failed loudly leaving `before` (the digest there, or nothing). */
  const assertNeverWrong = async (
    result: CliResult,
    final: string,
    before: string | undefined,
  ) => {
    if (result.code === 0) {
      assert.equal(JSON.parse(result.stdout).sha256, expected);
      assert.equal(await sha256File(final), expected);
      return;
    }
    assertFailedLoudly(result);
    const now = (await exists(final)) ? await sha256File(final) : undefined;
    assert.ok(
      now === before || now === expected,
      `a failed transfer left ${now} under ${final}`,
    );
  };

  for (let run = 0; run < 3; run++) {
    await t.step(`send, run ${run}`, async () => {
      const stored = `${srv}/sent-${run}.bin`;
      const result = await runCli([
        "send",
        file,
        "--as",
        `sent-${run}.bin`,
        ...args,
      ], { timeoutMs: 20_000 });
      await assertNeverWrong(result, stored, undefined);
    });

    await t.step(`get over an older copy, run ${run}`, async () => {
      const out = tmp.join(`got-${run}.bin`);
      await Deno.writeTextFile(out, "an older version\n");
      const older = await sha256File(out);
      const result = await runCli(
        ["get", "stored.bin", "--out", out, ...args],
        { timeoutMs: 20_000 },
      );
      await assertNeverWrong(result, out, older);
    });
  }
});
