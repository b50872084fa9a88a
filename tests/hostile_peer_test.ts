/**
 * What the client does when the other end is not a good ftv/1 server: a
 * port that speaks another protocol, a server that pages a listing forever,
 * and names and messages made to mislead a terminal. The CLI runs as a real
 * child process; the odd servers are written here, over real sockets.
 */

import assert from "node:assert/strict";
import { Logger } from "../base/log.ts";
import {
  type ControlMessage,
  type DirEntry,
  encodeControl,
  FrameReader,
  PROTOCOL_VERSION,
} from "../protocol.ts";
import {
  failureMessage,
  runCli,
  spawnServer,
  tempDir,
  writeAll,
} from "./test_util.ts";

const HOST = ["--host", "127.0.0.1"];
const encoder = new TextEncoder();

/** A TCP listener on 127.0.0.1 that hands each connection to `serve` and counts them. */
class FakeServer implements AsyncDisposable {
  readonly port: number;
  connections = 0;
  #listener: Deno.TcpListener;
  #accepting: Promise<void>;
  #handlers = new Set<Promise<void>>();

  constructor(serve: (conn: Deno.TcpConn) => Promise<void>) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#listener = listener;
    this.port = listener.addr.port;
    this.#accepting = (async () => {
      try {
        for await (const conn of listener) {
          this.connections++;
          const handler = serve(conn).catch(() => undefined).finally(() => {
            try {
              conn.close();
            } catch {
              // Closed by the handler already.
            }
          });
          this.#handlers.add(handler);
          handler.finally(() => this.#handlers.delete(handler));
        }
      } catch {
        // The listener was closed.
      }
    })();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    await Promise.all([...this.#handlers]);
  }
}

/**
 * A fake ftv/1 server: hellos like the real one, then every request is
 * answered by `answer` until the client hangs up.
 */
function fakeFtvServer(
  answer: (message: ControlMessage) => ControlMessage,
): FakeServer {
  return new FakeServer(async (conn) => {
    const reader = new FrameReader(conn);
    for (let frame = await reader.next(); frame; frame = await reader.next()) {
      if (frame.kind !== "control") return;
      const reply = frame.message.type === "hello"
        ? { type: "hello", version: PROTOCOL_VERSION, agent: "fake" } as const
        : answer(frame.message);
      await writeAll(conn, encodeControl(reply));
    }
  });
}

Deno.test("a port that speaks HTTP, SSH or TLS ends a get at once, in one attempt", async (t) => {
  const get = (port: number) =>
    runCli(["get", "x.bin", ...HOST, "--port", String(port)]);

  await t.step("an HTTP server", async () => {
    await using http = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response("hello"),
    );
    const result = await get(http.addr.port);
    assert.equal(result.code, 1, result.stderr);
    assert.match(
      failureMessage(result.stderr),
      new RegExp(
        `^ftv: Cannot start a session: 127\\.0\\.0\\.1:${http.addr.port} does not speak ftv/1 \\(it sent "HTTP/1\\.1 400 Bad Request\\\\r\\\\n`,
      ),
    );
    assert.doesNotMatch(result.stderr, /reconnecting/);
  });

  await t.step("an SSH server", async () => {
    const banner = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
    await using ssh = new FakeServer(async (conn) => {
      await writeAll(conn, encoder.encode(banner));
      await conn.read(new Uint8Array(1024));
    });
    const result = await get(ssh.port);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      failureMessage(result.stderr),
      `ftv: Cannot start a session: 127.0.0.1:${ssh.port} does not speak ftv/1 (it sent "SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n")`,
    );
    assert.equal(ssh.connections, 1, "the client tried again");
  });

  await t.step("an ftv server with --tls, asked without", async () => {
    await using tmp = await tempDir();
    await using server = await spawnServer(["--dir", tmp.join("srv"), "--tls"]);
    const result = await get(server.port);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(
      failureMessage(result.stderr),
      `ftv: Cannot start a session: 127.0.0.1:${server.port} does not speak ftv/1 (it speaks TLS: use --tls)`,
    );
    assert.doesNotMatch(result.stderr, /reconnecting/);
  });
});

/** A page of `count` folder entries from `offset` on, under `prefix`. */
function folders(prefix: string, offset: number, count: number): DirEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `${prefix}/d${offset + i}`,
    mtimeMs: 0,
    mode: 0o755,
  }));
}

/** Answers `list` with `page`, and `get` as the real server does for a folder. */
function listingServer(
  page: (offset: number, prefix: string) => ControlMessage,
): FakeServer {
  return fakeFtvServer((message) => {
    if (message.type === "list") {
      return page(message.offset ?? 0, message.prefix ?? "top");
    }
    return {
      type: "error",
      code: "not_found",
      message: "Cannot send: no such file on the server",
    };
  });
}

Deno.test("a server that pages a listing forever cannot keep list or a folder get going", async (t) => {
  const PAGE = 10_000;
  const cases: [
    string,
    (offset: number, prefix: string) => ControlMessage,
    RegExp,
  ][] = [
    [
      "pages that follow on and never end",
      (offset, prefix) => ({
        type: "listing",
        files: [],
        dirs: folders(prefix, offset, PAGE),
        next: offset + PAGE,
      }),
      /listing runs past 1,000,000 entries, the most a client accepts$/,
    ],
    [
      "a next that skips past what the page held",
      (offset, prefix) => ({
        type: "listing",
        files: [],
        dirs: folders(prefix, offset, 1),
        next: offset + PAGE,
      }),
      /a page of 1 entries at offset 0 says the next starts at 10000$/,
    ],
    [
      "an empty page that says more follow",
      (offset) => ({ type: "listing", files: [], next: offset }),
      /a page of 0 entries at offset 0 says the next starts at 0$/,
    ],
  ];
  for (const [what, page, message] of cases) {
    await t.step(what, async () => {
      await using tmp = await tempDir();
      await using server = listingServer(page);
      const port = [...HOST, "--port", String(server.port)];
      // Bounded, so the code before the fix fails instead of filling memory.
      const options = { timeoutMs: 20_000 };
      const listed = await runCli(["list", ...port], options);
      assert.equal(listed.code, 1, listed.stderr);
      assert.match(failureMessage(listed.stderr), message);
      const got = await runCli(["get", "tree", "--max-retries", "0", ...port], {
        ...options,
        cwd: tmp.path,
      });
      assert.equal(got.code, 1, got.stderr);
      assert.match(failureMessage(got.stderr), message);
    });
  }
});

const BIDI = "\u202e";

Deno.test("names and messages from the peer are escaped in log lines, list output and error lines", async (t) => {
  await t.step("log lines escape bidirectional controls", () => {
    const seen: string[] = [];
    const log = new Logger("Test", { sink: (line) => seen.push(line) });
    log.info(`Received evil${BIDI}txt.exe and a\u2066b\u200fc\u061cd\u0085e`);
    assert.equal(seen.length, 1);
    assert.match(
      seen[0]!,
      /Received evil\\u202etxt\.exe and a\\u2066b\\u200fc\\u061cd\\u0085e$/,
    );
  });

  await t.step("list output from a real server", async () => {
    await using tmp = await tempDir();
    const file = tmp.join("payload.bin");
    await Deno.writeTextFile(file, "not what it seems\n");
    await using server = await spawnServer(["--dir", tmp.join("srv")]);
    const port = [...HOST, "--port", String(server.port)];
    const sent = await runCli([
      "send",
      file,
      "--as",
      `evil${BIDI}txt.exe`,
      ...port,
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    const listed = await runCli(["list", ...port]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.ok(!listed.stdout.includes(BIDI), "a raw U+202E reached stdout");
    assert.match(listed.stdout, / evil\\u202etxt\.exe\n$/);
    const json = await runCli(["list", "--json", ...port]);
    assert.ok(!json.stdout.includes(BIDI), "a raw U+202E reached stdout");
    assert.equal(JSON.parse(json.stdout).files[0].name, `evil${BIDI}txt.exe`);
  });

  await t.step(
    "list output and an error line from a hostile server",
    async () => {
      const csi = "\u009b2J";
      await using server = fakeFtvServer((message) =>
        message.type === "list"
          ? {
            type: "listing",
            files: [{
              name: `a${csi}b`,
              size: 1,
              sha256: "0".repeat(64),
              mtimeMs: 0,
            }],
          }
          : {
            type: "error",
            code: "bad_request",
            message: `Cannot send: \u001b[2Jgone${BIDI}\nftv: all is well`,
          }
      );
      await using tmp = await tempDir();
      const port = [...HOST, "--port", String(server.port)];
      const listed = await runCli(["list", ...port]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, / a\\u009b2Jb\n$/);
      const got = await runCli(["get", "x.bin", ...port], { cwd: tmp.path });
      assert.equal(got.code, 1, got.stderr);
      assert.equal(
        failureMessage(got.stderr),
        "ftv: Cannot send: \\u001b[2Jgone\\u202e\\u000aftv: all is well",
      );
    },
  );
});
