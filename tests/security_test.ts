/**
 * Security evidence, one attack per test: TLS 1.3, pinning and trust on
 * first use through the real CLI; token login and its throttle; names and
 * symbolic links that try to leave the server's folder; size limits;
 * oversized frames; slow and numerous connections; and a short seeded fuzz
 * of the protocol. CLI behaviour is tested on real child processes, the rest
 * on in-process servers. Everything binds 127.0.0.1 port 0, except one start
 * check on 0.0.0.0 that sends no traffic.
 */

import assert from "node:assert/strict";
import { AuthThrottle, proofFor, proofMatches } from "../security/auth.ts";
import { hostileNames } from "../tools/fuzz/names.ts";
import { runFuzz } from "../tools/fuzz/run.ts";
import {
  snapshotTree,
  strayEntries,
  verifyGoodClient,
} from "../tools/fuzz/checks.ts";
import { FtvClient, serve } from "../mod.ts";
import {
  type ControlMessage,
  encodeControl,
  encodeData,
  type Frame,
  FRAME_KIND,
  FrameReader,
  MAX_CONTROL_BYTES,
  MAX_FRAME_BYTES,
} from "../protocol.ts";
import {
  exists,
  hasCommand,
  HELLO,
  listDir,
  LogCapture,
  nextFrame,
  pollUntil,
  rawSession,
  readUntilClosed,
  runCli,
  sameBytes,
  sha256sum,
  spawnServer,
  spawnService,
  tempDir,
  testServer,
  writeAll,
  writeRandomFile,
} from "./test_util.ts";
import { RemoteError } from "../base/errors.ts";

const HOST = "127.0.0.1";
const decoder = new TextDecoder();

/** The fingerprint a `server --tls` child logged. */
async function loggedFingerprint(server: { log(): string }): Promise<string> {
  const pattern = /TLS CA fingerprint: (SHA256:[0-9a-f]{64})/;
  await pollUntil(() => pattern.test(server.log()), {
    what: "the TLS CA fingerprint in the server log",
  });
  return server.log().match(pattern)![1]!;
}

/** Part and state files in `dir`: what an upload leaves once data moves. */
async function partFiles(dir: string): Promise<string[]> {
  return (await listDir(dir)).filter((name) =>
    name.endsWith(".ftv-part") || name.includes(".ftv-state")
  );
}

function assertErrorFrame(frame: Frame | null | undefined, code: string): void {
  assert.ok(frame, `expected an error frame with ${code}, got nothing`);
  assert.equal(frame.kind, "control");
  assert.equal(frame.message.type, "error", JSON.stringify(frame.message));
  assert.equal((frame.message as { code: string }).code, code);
}

function put(name: string, size: number): ControlMessage {
  return {
    type: "put",
    name,
    size,
    chunkSize: 1024,
    mtimeMs: 0,
    maxRetries: 0,
  };
}

Deno.test("server --tls speaks TLS 1.3 and send trusts it only by CA file, pin or an unchanged known host", async (t) => {
  await using tmp = await tempDir();
  const dirA = tmp.join("a");
  const file = tmp.join("payload.bin");
  await writeRandomFile(file, 300_007);
  const expected = await sha256sum(file);
  await using a = await spawnServer(["--dir", dirA, "--tls"]);
  const pinA = await loggedFingerprint(a);
  const target = ["--host", HOST, "--port", String(a.port), "--tls"];

  await t.step("openssl s_client negotiates TLSv1.3", async () => {
    if (!(await hasCommand("openssl"))) {
      console.log("openssl is not installed here: TLS 1.3 step skipped");
      return;
    }
    const child = new Deno.Command("openssl", {
      args: ["s_client", "-connect", `${HOST}:${a.port}`, "-brief"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    try {
      const { stdout, stderr } = await child.output();
      const text = decoder.decode(stdout) + decoder.decode(stderr);
      assert.match(text, /Protocol version: TLSv1\.3/, text);
    } finally {
      clearTimeout(timer);
    }
  });

  await t.step("a wrong --pin exits 3 before any file data moves", async () => {
    const wrong = `SHA256:${"0".repeat(64)}`;
    const r = await runCli(["send", file, ...target, "--pin", wrong]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /not the pinned/);
    assert.match(r.stderr, /nothing was sent/);
    assert.deepEqual(await partFiles(dirA), []);
    assert.equal(await exists(`${dirA}/payload.bin`), false);
    assert.doesNotMatch(a.log(), /Receiving payload\.bin/);
  });

  await t.step(
    "a known host whose fingerprint changed exits 3 with the loud warning",
    async () => {
      // The identity of another server, made the same way from another --dir.
      await using b = await spawnServer(["--dir", tmp.join("b"), "--tls"]);
      const pinB = await loggedFingerprint(b);
      assert.notEqual(pinB, pinA);
      const knownHosts = tmp.join("known_hosts");
      const entry = `${HOST}:${a.port} ${pinB}\n`;
      await Deno.writeTextFile(knownHosts, entry);
      const r = await runCli([
        "send",
        file,
        ...target,
        "--known-hosts",
        knownHosts,
      ]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
      assert.ok(r.stderr.includes(pinA), "names the fingerprint it got");
      assert.equal(await Deno.readTextFile(knownHosts), entry);
      assert.deepEqual(await partFiles(dirA), []);
      assert.doesNotMatch(a.log(), /Receiving payload\.bin/);
    },
  );

  await t.step("the right --pin transfers the file verified", async () => {
    const r = await runCli(["send", file, ...target, "--pin", pinA]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${expected}  ${file}\n`);
    assert.ok(await sameBytes(file, `${dirA}/payload.bin`));
  });

  await t.step("--ca with the server's ca.pem transfers verified", async () => {
    const r = await runCli([
      "send",
      file,
      ...target,
      "--ca",
      `${dirA}/.ftv/tls/ca.pem`,
      "--as",
      "by-ca.bin",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${expected}  ${file}\n`);
    assert.ok(await sameBytes(file, `${dirA}/by-ca.bin`));
  });

  await t.step("first use records the host, then verifies", async () => {
    const knownHosts = tmp.join("fresh_known_hosts");
    const r = await runCli([
      "send",
      file,
      ...target,
      "--known-hosts",
      knownHosts,
      "--as",
      "by-tofu.bin",
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /Trusting 127\.0\.0\.1:\d+ on first use/);
    assert.equal(
      await Deno.readTextFile(knownHosts),
      `${HOST}:${a.port} ${pinA}\n`,
    );
    assert.ok(await sameBytes(file, `${dirA}/by-tofu.bin`));
  });
});

Deno.test("server --token refuses a wrong token with exit 3, logs it, pauses the next try, and serves the right one", async (t) => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const file = tmp.join("payload.bin");
  await writeRandomFile(file, 100_003);
  const expected = await sha256sum(file);
  const token = "correct horse battery staple";
  await using server = await spawnServer(["--dir", dir, "--token", token]);
  const target = ["--host", HOST, "--port", String(server.port)];

  let first = 0;
  await t.step("a wrong token exits 3 and the server logs it", async () => {
    const r = await runCli(["send", file, ...target, "--token", "guess"]);
    first = r.ms;
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /wrong token/);
    await pollUntil(() => /WARNING - .*wrong token/.test(server.log()), {
      what: "the server's log line about the wrong token",
    });
    assert.deepEqual(await partFiles(dir), []);
  });

  await t.step(
    "a second wrong try from the same address is paused",
    async () => {
      const r = await runCli(["send", file, ...target, "--token", "guess2"]);
      assert.equal(r.code, 3, r.stderr);
      // The throttle holds the second attempt about 1 s (its base delay).
      assert.ok(
        r.ms - first >= 600,
        `second refusal took ${r.ms} ms, first ${first} ms`,
      );
      assert.ok(r.ms - first < 15_000, `second refusal took ${r.ms} ms`);
    },
  );

  await t.step("the right --token transfers verified", async () => {
    const r = await runCli(["send", file, ...target, "--token", token]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${expected}  ${file}\n`);
    assert.ok(await sameBytes(file, `${dir}/payload.bin`));
  });

  await t.step("no token at all exits 3 naming --token", async () => {
    const r = await runCli(["send", file, ...target]);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /requires a token/);
  });

  await t.step("FTV_TOKEN works in place of --token", async () => {
    const r = await runCli(["send", file, ...target, "--as", "env.bin"], {
      env: { FTV_TOKEN: token },
      permissions: [
        `--allow-net=${HOST}`,
        `--allow-read=${file}`,
        "--allow-env=FTV_TOKEN",
      ],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(await sameBytes(file, `${dir}/env.bin`));
  });
});

Deno.test("server on a non-loopback address needs a token or --no-auth", async (t) => {
  await using tmp = await tempDir();
  await t.step("without a token it refuses to start (exit 2)", async () => {
    const r = await runCli([
      "server",
      "--host",
      "0.0.0.0",
      "--port",
      "0",
      "--dir",
      tmp.join("srv"),
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /without a token/);
  });
  await t.step("with --no-auth it starts", async () => {
    // Only the start is checked: no traffic goes to 0.0.0.0.
    await using server = await spawnService(
      [
        "server",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--dir",
        tmp.join("srv"),
        "--no-auth",
      ],
      /Server started on 0\.0\.0\.0:(\d+)\n/,
    );
    assert.ok(server.port > 0);
    await server.stop();
  });
});

Deno.test("proofMatches() accepts only the exact proof and never throws on junk", () => {
  const challenge = "c2VjdXJpdHktdGVzdA==";
  const proof = proofFor("token", challenge);
  assert.equal(proofMatches("token", challenge, proof), true);
  for (
    const junk of [
      "",
      "zz",
      proof.toUpperCase(),
      proof + "00",
      proof.slice(0, 62),
      "0".repeat(64),
      proofFor("token2", challenge),
      proofFor("token", challenge + "x"),
      "é".repeat(32),
      "f".repeat(1_000_000),
    ]
  ) {
    assert.equal(proofMatches("token", challenge, junk), false);
  }
});

Deno.test("AuthThrottle doubles the pause per failure, caps it, and forgets on success", () => {
  const throttle = new AuthThrottle({ maxAddresses: 2 });
  assert.equal(throttle.delayFor("a"), 0);
  const delays = [];
  for (let i = 0; i < 7; i++) {
    throttle.fail("a");
    delays.push(throttle.delayFor("a"));
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  assert.equal(throttle.delayFor("b"), 0, "other addresses are not paused");
  throttle.succeed("a");
  assert.equal(throttle.delayFor("a"), 0);
  for (const address of ["x", "y", "z"]) throttle.fail(address);
  assert.equal(throttle.delayFor("x"), 0, "the oldest address is forgotten");
  assert.equal(throttle.delayFor("z"), 1000);
});

Deno.test("serve() refuses every hostile name in put and get and writes nothing outside its folder", async (t) => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const outside = tmp.join("outside");
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/canary.txt`, "untouched\n");
  const logs = new LogCapture();
  await using server = await serve({
    host: HOST,
    port: 0,
    dir,
    log: logs.logger("FileTransferServer"),
  });
  const before = await snapshotTree(tmp.path, dir);
  const names = hostileNames(outside);
  assert.ok(names.length >= 20, `only ${names.length} names`);
  using s = await rawSession(server.addr.port);
  for (const name of names) {
    await t.step(`${JSON.stringify(name).slice(0, 50)}`, async () => {
      assertErrorFrame(await s.ask(put(name, 5)), "bad_name");
      assertErrorFrame(await s.ask({ type: "get", name }), "bad_name");
    });
  }
  await t.step(
    "the session goes on; nothing was written anywhere",
    async () => {
      const listing = await s.ask({ type: "list" });
      assert.ok(listing?.kind === "control");
      assert.deepEqual(listing.message, { type: "listing", files: [] });
      assert.deepEqual(await snapshotTree(tmp.path, dir), before);
      assert.deepEqual(
        (await listDir(dir)).filter((name) => name !== ".ftv"),
        [],
      );
      assert.equal(await exists(tmp.join("pwned")), false);
      assert.equal(await exists(`${outside}/pwned`), false);
    },
  );
});

Deno.test("serve() refuses names whose file, part or state is a symbolic link", async (t) => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  const outside = tmp.join("outside");
  await Deno.mkdir(dir);
  await Deno.mkdir(outside);
  const victims = ["victim-part", "victim-state", "victim-tmp", "victim-final"];
  for (const victim of victims) {
    await Deno.writeTextFile(`${outside}/${victim}`, `${victim} untouched\n`);
  }
  await Deno.symlink("../outside/victim-part", `${dir}/x.ftv-part`);
  await Deno.symlink("../outside/victim-state", `${dir}/y.ftv-state`);
  await Deno.symlink("../outside/victim-tmp", `${dir}/w.ftv-state.tmp`);
  await Deno.symlink("../outside/victim-final", `${dir}/z`);
  await Deno.symlink("/etc/passwd", `${dir}/passwd`);
  const logs = new LogCapture();
  await using server = await serve({
    host: HOST,
    port: 0,
    dir,
    log: logs.logger("FileTransferServer"),
  });
  const source = tmp.join("source.bin");
  await writeRandomFile(source, 5000);
  using client = await FtvClient.connect({
    host: HOST,
    port: server.addr.port,
    timeoutMs: 5000,
    log: logs.logger("FileTransferClient"),
  });
  const refusal = async (attempt: Promise<unknown>) => {
    const error = await attempt.then(() => null, (error) => error);
    assert.ok(error instanceof RemoteError, `got ${error}`);
    return error;
  };

  for (const name of ["x", "y", "w", "z"]) {
    await t.step(`put ${name} is refused with bad_name`, async () => {
      const error = await refusal(client.send(source, { as: name }));
      assert.equal(error.code, "bad_name");
      assert.match(error.message, /symbolic link/);
    });
  }
  await t.step("get of a link to /etc/passwd is refused", async () => {
    const out = tmp.join("passwd.copy");
    const error = await refusal(client.get("passwd", { out }));
    assert.equal(error.code, "bad_name");
    assert.equal(await exists(out), false);
  });
  await t.step("get of a link out of the folder is refused", async () => {
    const error = await refusal(client.get("z", { out: tmp.join("z.copy") }));
    assert.equal(error.code, "bad_name");
  });
  await t.step("list shows no link", async () => {
    assert.deepEqual(await client.list(), []);
  });
  await t.step("the files outside are untouched", async () => {
    for (const victim of victims) {
      assert.equal(
        await Deno.readTextFile(`${outside}/${victim}`),
        `${victim} untouched\n`,
      );
    }
    assert.deepEqual(await listDir(outside), [...victims].sort());
  });
});

Deno.test("server --max-file-size and --max-total refuse a put before any data is accepted", async (t) => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  await using server = await spawnServer([
    "--dir",
    dir,
    "--max-file-size",
    "10k",
    "--max-total",
    "20k",
  ]);

  await t.step("one byte over the file limit gets too_large", async () => {
    using s = await rawSession(server.port);
    assertErrorFrame(await s.ask(put("big.bin", 10 * 1024 + 1)), "too_large");
    // A chunk sent anyway is no part of any transfer: the server hangs up.
    await writeAll(s.conn, encodeData(1, 0, new Uint8Array(1024)));
    const { frames } = await readUntilClosed(s.conn);
    assert.ok(frames.length <= 1);
    if (frames.length === 1) assertErrorFrame(frames[0], "protocol_error");
    assert.deepEqual(
      (await listDir(dir)).filter((name) => name !== ".ftv"),
      [],
    );
  });

  await t.step("past the total limit gets too_large", async () => {
    const file = tmp.join("nine.bin");
    await writeRandomFile(file, 9000);
    using client = await FtvClient.connect({
      host: HOST,
      port: server.port,
      timeoutMs: 5000,
      log: new LogCapture().logger("FileTransferClient"),
    });
    await client.send(file, { as: "one.bin" });
    await client.send(file, { as: "two.bin" });
    using s = await rawSession(server.port);
    // 18000 stored + 5000 > 20480, though 5000 is under the file limit.
    assertErrorFrame(await s.ask(put("three.bin", 5000)), "too_large");
    assert.deepEqual(await partFiles(dir), []);
    assert.equal(await exists(`${dir}/three.bin`), false);
    assert.match(server.log(), /exceed the 20480-byte storage limit/);
  });
});

Deno.test("serve() refuses a nack naming a chunk more than once instead of amplifying it", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  await Deno.mkdir(dir);
  await writeRandomFile(`${dir}/seed.bin`, 4096);
  const logs = new LogCapture();
  await using server = await serve({
    host: HOST,
    port: 0,
    dir,
    chunkSize: 1024,
    log: logs.logger("FileTransferServer"),
  });
  using s = await rawSession(server.addr.port);
  const offer = await s.ask({ type: "get", name: "seed.bin" });
  assert.ok(offer?.kind === "control" && offer.message.type === "offer");
  const { transferId } = offer.message;
  await writeAll(
    s.conn,
    encodeControl({ type: "ready", transferId, have: "AA==" }),
  );
  let chunks = 0;
  for (let i = 0; i < 10; i++) {
    const frame = await nextFrame(s.reader, s.conn);
    if (frame?.kind === "data") chunks++;
    else break;
  }
  assert.equal(chunks, 4);
  // 400 KB asking for chunk 0 200,000 times, 8 copies each: 800 MB of
  // chunks from a 4 KB file, had the server obliged.
  const seqs = new Array<number>(200_000).fill(0);
  await writeAll(
    s.conn,
    encodeControl({ type: "nack", transferId, seqs, round: 30 }),
  );
  const { frames } = await readUntilClosed(s.conn);
  assert.deepEqual(frames.map((frame) => frame.kind), ["control"]);
  assertErrorFrame(frames[0], "protocol_error");
  await logs.waitFor(/names it more than once/);
});

Deno.test("a peer's text cannot forge or hide server log lines", async () => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  await using server = await testServer(tmp, logs);
  const forged =
    "\n2026-01-01 00:00:00 - FileTransferServer - INFO - File received and saved as forged.bin\u001b[2K";
  {
    using conn = await Deno.connect({ hostname: HOST, port: server.addr.port });
    await writeAll(
      conn,
      encodeControl({ type: "hello", version: 2, agent: forged }),
    );
    await readUntilClosed(conn);
  }
  {
    using s = await rawSession(server.addr.port);
    const ready = await s.ask(put("a.bin", 10));
    assert.equal(ready?.kind === "control" && ready.message.type, "ready");
    await writeAll(
      s.conn,
      encodeControl({ type: "error", code: "internal_error", message: forged }),
    );
    await readUntilClosed(s.conn);
  }
  await pollUntil(
    () => logs.lines.filter((line) => line.includes("forged.bin")).length >= 2,
    { what: "both forged texts in the log" },
  );
  for (const line of logs.lines) {
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f]/);
  }
});

Deno.test("serve() hangs up on a length prefix over the cap without waiting for the body", async (t) => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  await using server = await testServer(tmp, logs);
  const header = (length: number, kind: number) => {
    const bytes = new Uint8Array(5);
    new DataView(bytes.buffer).setUint32(0, length);
    bytes[4] = kind;
    return bytes;
  };
  const cases: [string, Uint8Array][] = [
    ["data", header(MAX_FRAME_BYTES + 1, FRAME_KIND.data)],
    ["control", header(1 + 4 + MAX_CONTROL_BYTES + 1, FRAME_KIND.control)],
  ];
  for (const [kind, bytes] of cases) {
    for (const afterHello of [false, true]) {
      await t.step(
        `${kind} frame, ${afterHello ? "after" : "before"} hello`,
        async () => {
          using conn = await Deno.connect({
            hostname: HOST,
            port: server.addr.port,
          });
          await writeAll(
            conn,
            afterHello ? Uint8Array.of(...HELLO, ...bytes) : bytes,
          );
          const { frames } = await readUntilClosed(conn);
          const rest = afterHello ? frames.slice(1) : frames;
          assert.equal(rest.length, 1, `got ${rest.length} frames`);
          assertErrorFrame(rest[0], "protocol_error");
          await verifyGoodClient(server.addr.port, tmp.path, { bytes: 5000 });
        },
      );
    }
  }
});

Deno.test("serve() drops silent and trickling connections after the handshake timeout while serving others", async () => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  await using server = await testServer(tmp, logs, {
    handshakeTimeoutMs: 1000,
  });
  const { port } = server.addr;
  const started = performance.now();
  const silent = await Promise.all(
    Array.from({ length: 5 }, () => Deno.connect({ hostname: HOST, port })),
  );
  const trickler = await Deno.connect({ hostname: HOST, port });
  try {
    const silentDrops = silent.map(async (conn) => {
      const { frames } = await readUntilClosed(conn, 6000);
      assert.deepEqual(frames, []);
      return performance.now() - started;
    });
    let trickled = 0;
    let dropped = false;
    const trickle = (async () => {
      // One byte of a hello every 100 ms: the whole hello would take seconds.
      for (let i = 0; i < HELLO.length && !dropped; i++) {
        try {
          await writeAll(trickler, HELLO.subarray(i, i + 1));
        } catch {
          return;
        }
        trickled++;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const trickleDrop = (async () => {
      await readUntilClosed(trickler, 6000).finally(() => dropped = true);
      return performance.now() - started;
    })();
    // Meanwhile a well-behaved client is served.
    await verifyGoodClient(port, tmp.path, { bytes: 50_000 });
    for (const ms of [...await Promise.all(silentDrops), await trickleDrop]) {
      assert.ok(ms >= 800 && ms <= 4000, `dropped after ${ms} ms`);
    }
    await trickle;
    assert.ok(
      trickled < HELLO.length,
      `the trickler sent all ${trickled} bytes of its hello`,
    );
    assert.ok(trickled >= 3, `only ${trickled} bytes trickled`);
  } finally {
    for (const conn of [...silent, trickler]) {
      try {
        conn.close();
      } catch {
        // Closed by readUntilClosed's timeout.
      }
    }
  }
});

Deno.test("serve() under 500 connections at once holds at most its limit, never drops one that said hello, leaks no slot and keeps serving", async () => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  await using server = await serve({
    host: HOST,
    port: 0,
    dir: tmp.join("srv"),
    maxConnections: 64,
    maxConnectionsPerAddress: 64,
    handshakeTimeoutMs: 1000, // Silent ones still held are closed after it.
    log: logs.logger("FileTransferServer", "DEBUG"),
  });
  let crashed: unknown;
  server.finished.catch((error) => crashed = error);
  const { port } = server.addr;
  const count = 500;
  const conns = await Promise.all(
    Array.from({ length: count }, () => Deno.connect({ hostname: HOST, port })),
  );
  try {
    // Half say hello, half say nothing.
    await Promise.all(
      conns.map((conn, i) => i % 2 === 0 ? writeAll(conn, HELLO) : undefined),
    );
    // Each connection ends up greeted (kept), refused busy, or dropped while
    // silent; the greeted ones are never closed afterwards.
    const greeted: Deno.Conn[] = [];
    await Promise.all(conns.map(async (conn, i) => {
      const reader = new FrameReader(conn);
      if (i % 2 === 0) {
        const frame = await nextFrame(reader, conn).catch(() => null);
        if (frame?.kind === "control" && frame.message.type === "hello") {
          greeted.push(conn);
          return;
        }
        if (frame) assertErrorFrame(frame, "busy");
        return;
      }
      const { frames } = await readUntilClosed(conn);
      assert.ok(frames.length <= 1);
      if (frames.length === 1) assertErrorFrame(frames[0], "busy");
    }));
    assert.ok(
      greeted.length > 0 && greeted.length <= 64,
      `${greeted.length} greeted`,
    );
    // The greeted sessions are alive: each answers a list.
    await Promise.all(greeted.map(async (conn) => {
      await writeAll(conn, encodeControl({ type: "list" }));
      const frame = await nextFrame(new FrameReader(conn), conn);
      assert.equal(frame?.kind === "control" && frame.message.type, "listing");
    }));
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // Closed by the server.
      }
    }
  }
  await pollUntil(
    () =>
      logs.lines.filter((line) => /Connection established with/.test(line))
        .length <=
        logs.lines.filter((line) =>
          /Connection with \S+ closed|Closing connection with|closed before hello/
            .test(line)
        ).length,
    { what: "every admitted session to end" },
  );
  // No slot leaked: 63 new sessions and a good client fit in the 64.
  const fresh = await Promise.all(
    Array.from({ length: 63 }, () => rawSession(port)),
  );
  try {
    const good = await verifyGoodClient(port, tmp.path);
    assert.equal(good.bytes, 100_003);
  } finally {
    for (const s of fresh) s[Symbol.dispose]();
  }
  assert.equal(crashed, undefined);
});

Deno.test("serve() survives 1,000 fuzzed frames and still serves a good client", async () => {
  await using tmp = await tempDir();
  const sandbox = tmp.join("sandbox");
  const dir = `${sandbox}/srv`;
  const outside = `${sandbox}/outside`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.mkdir(outside);
  await Deno.writeTextFile(`${outside}/canary.txt`, "untouched\n");
  await writeRandomFile(`${dir}/seed.bin`, 5000);
  const before = await snapshotTree(sandbox, dir);
  const logs = new LogCapture();
  await using server = await serve({
    host: HOST,
    port: 0,
    dir,
    chunkSize: 1024,
    idleTimeoutMs: 5000,
    handshakeTimeoutMs: 5000,
    log: logs.logger("FileTransferServer", "ERROR"),
  });
  let crashed: unknown;
  server.finished.catch((error) => crashed = error);
  const stats = await runFuzz({
    port: server.addr.port,
    frames: 1000,
    seed: 20261126,
    outside,
  });
  assert.ok(stats.framesSent >= 1000, `sent ${stats.framesSent} frames`);
  assert.ok(stats.connections >= 50, `${stats.connections} connections`);
  assert.equal(stats.hung, 0, "connections the server left hanging");
  assert.ok(stats.closedByServer > 0);
  assert.ok(stats.errorCodes.protocol_error! > 0);
  assert.ok(stats.errorCodes.bad_name! > 0);
  assert.equal(
    stats.errorCodes.internal_error,
    undefined,
    `internal errors: ${stats.errorSamples.internal_error}`,
  );
  assert.equal(crashed, undefined);
  await Deno.mkdir(tmp.join("work"));
  await verifyGoodClient(server.addr.port, tmp.join("work"));
  assert.deepEqual(await snapshotTree(sandbox, dir), before);
  assert.deepEqual(await strayEntries(dir), []);
});
