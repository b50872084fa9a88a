import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import {
  connect as nodeTlsConnect,
  createServer as nodeTlsServer,
} from "node:tls";
import { join } from "node:path";
import {
  ensureServerCertificates,
  fingerprintOfPem,
  loadCertificates,
  normalizeFingerprint,
  type ServerCertificates,
} from "../security/tls.ts";
import { connectTrusted, defaultKnownHostsPath } from "../security/trust.ts";
import { ConnectionError, TrustError } from "../base/errors.ts";
import { spawnServer, tempDir } from "./test_util.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A TLS echo server on 127.0.0.1 that counts the bytes it received. */
class EchoServer {
  readonly port: number;
  received = 0;
  #listener: Deno.TlsListener;
  #accepting: Promise<void>;
  #handlers = new Set<Promise<void>>();

  constructor(cert: string, key: string, port = 0) {
    this.#listener = Deno.listenTls({ hostname: "127.0.0.1", port, cert, key });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const handler = this.#echo(conn);
        this.#handlers.add(handler);
        handler.finally(() => this.#handlers.delete(handler));
      }
    } catch {
      // Listener closed.
    }
  }

  async #echo(conn: Deno.TlsConn): Promise<void> {
    const buf = new Uint8Array(1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        this.received += n;
        await conn.write(buf.subarray(0, n));
      }
    } catch {
      // A client that refused us hangs up mid-handshake.
    } finally {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }

  /** Stops accepting and waits for every connection to end; idempotent. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    await this.#accepting;
    await Promise.all([...this.#handlers]);
  }
}

function echoServer(certs: ServerCertificates, port = 0): EchoServer {
  return new EchoServer(certs.certPem, certs.keyPem, port);
}

async function echo(conn: Deno.Conn, text: string): Promise<string> {
  const bytes = encoder.encode(text);
  await conn.write(bytes);
  await conn.closeWrite();
  const got = new Uint8Array(bytes.length);
  let filled = 0;
  while (filled < got.length) {
    const n = await conn.read(got.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return decoder.decode(got.subarray(0, filled));
}

/** The error a refused connection threw; a connection that opened is closed. */
async function refusal(attempt: Promise<Deno.TlsConn>): Promise<unknown> {
  try {
    const conn = await attempt;
    conn.close();
    return null;
  } catch (error) {
    return error;
  }
}

async function hasOpenssl(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("openssl", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

/** The protocol a default `node:tls` client (offering 1.2 and 1.3) gets. */
function nodeProtocol(port: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    let protocol: string | null = null;
    const socket = nodeTlsConnect({
      host: "127.0.0.1",
      port,
      rejectUnauthorized: false,
    });
    socket.once("secureConnect", () => {
      protocol = socket.getProtocol();
      socket.end();
    });
    socket.once("error", reject);
    socket.once("close", () => resolve(protocol));
  });
}

Deno.test("ensureServerCertificates() creates certificates once, then reuses them", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  try {
    const first = await ensureServerCertificates(dir);
    const second = await ensureServerCertificates(dir);
    assert.equal(second.caFingerprint, first.caFingerprint);
    assert.equal(second.certPem, first.certPem);
    assert.equal(second.keyPem, first.keyPem);
    assert.match(first.caFingerprint, /^SHA256:[0-9a-f]{64}$/);
    assert.equal(await fingerprintOfPem(first.caCertPem), first.caFingerprint);

    const tlsDir = join(dir, ".ftv", "tls");
    assert.equal(
      await Deno.readTextFile(join(tlsDir, "ca.pem")),
      first.caCertPem,
    );
    assert.equal(
      await Deno.readTextFile(join(tlsDir, "cert.pem")),
      first.certPem,
    );
    assert.equal(
      await Deno.readTextFile(join(tlsDir, "key.pem")),
      first.keyPem,
    );
    if (Deno.build.os !== "windows") {
      assert.equal(
        (await Deno.stat(join(tlsDir, "key.pem"))).mode! & 0o777,
        0o600,
      );
      assert.equal(
        (await Deno.stat(join(tlsDir, "ca-key.pem"))).mode! & 0o777,
        0o600,
      );
    }

    const ca = new X509Certificate(first.caCertPem);
    const leaf = new X509Certificate(first.certPem);
    assert.equal(ca.ca, true);
    assert.equal(leaf.ca, false);
    assert.equal(leaf.checkIssued(ca), true);
    assert.equal(leaf.verify(ca.publicKey), true);
    assert.match(leaf.subjectAltName ?? "", /DNS:localhost/);
    assert.match(leaf.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
    assert.match(leaf.subjectAltName ?? "", /IP Address:::1/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureServerCertificates() called twice at once settles on one CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  try {
    const [a, b] = await Promise.all([
      ensureServerCertificates(dir),
      ensureServerCertificates(dir),
    ]);
    const stored = await ensureServerCertificates(dir);
    assert.equal(a.caFingerprint, stored.caFingerprint);
    assert.equal(b.caFingerprint, stored.caFingerprint);
    assert.equal(a.certPem, stored.certPem);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(join(dir, ".ftv")))).map((e) =>
        e.name
      ),
      ["tls"],
      "no temporary folder is left behind",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureServerCertificates() re-signs the leaf for new hostnames under the same CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  try {
    const first = await ensureServerCertificates(dir);
    const widened = await ensureServerCertificates(dir, [
      "files.example",
      "10.1.2.3",
    ]);
    assert.equal(widened.caFingerprint, first.caFingerprint);
    assert.equal(widened.keyPem, first.keyPem);
    assert.notEqual(widened.certPem, first.certPem);
    const san = new X509Certificate(widened.certPem).subjectAltName ?? "";
    assert.match(san, /DNS:files\.example/);
    assert.match(san, /IP Address:10\.1\.2\.3/);
    assert.match(san, /DNS:localhost/);
    const again = await ensureServerCertificates(dir, ["FILES.example"]);
    assert.equal(again.certPem, widened.certPem);
    await assert.rejects(
      ensureServerCertificates(dir, ["not a host"]),
      TypeError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Deno.listenTls() with the certificates serves a client that trusts the CA", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  const certs = await ensureServerCertificates(dir);
  try {
    for (const chain of ["leaf", "leaf+CA"] as const) {
      await t.step(`presenting ${chain}`, async () => {
        const cert = chain === "leaf"
          ? certs.certPem
          : certs.certPem + certs.caCertPem;
        await using server = new EchoServer(cert, certs.keyPem);
        for (const hostname of ["127.0.0.1", "localhost"]) {
          using conn = await Deno.connectTls({
            hostname,
            port: server.port,
            caCerts: [certs.caCertPem],
          });
          assert.equal(await echo(conn, "ping"), "ping");
        }
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the server negotiates TLS 1.3 with a client offering 1.2 and 1.3", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  const certs = await ensureServerCertificates(dir);
  try {
    await using server = echoServer(certs);
    assert.equal(await nodeProtocol(server.port), "TLSv1.3");
    if (await hasOpenssl()) {
      const caPath = join(dir, ".ftv", "tls", "ca.pem");
      const child = new Deno.Command("openssl", {
        args: [
          "s_client",
          "-connect",
          `127.0.0.1:${server.port}`,
          "-CAfile",
          caPath,
          "-verify_return_error",
          "-brief",
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      await child.stdin.close();
      const { stdout, stderr } = await child.output();
      const text = decoder.decode(stdout) + decoder.decode(stderr);
      assert.match(text, /Protocol version: TLSv1\.3/);
      assert.match(text, /Verification: OK/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("connectTrusted() in ca mode verifies the server against the CA", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  const other = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  try {
    const certs = await ensureServerCertificates(dir);
    const stranger = await ensureServerCertificates(other);
    await using server = echoServer(certs);
    {
      using conn = await connectTrusted("127.0.0.1", server.port, {
        kind: "ca",
        caPem: certs.caCertPem,
      });
      assert.equal(await echo(conn, "hello ca"), "hello ca");
    }
    const error = await refusal(connectTrusted("localhost", server.port, {
      kind: "ca",
      caPem: stranger.caCertPem,
    }));
    assert.ok(error instanceof TrustError, String(error));
    assert.equal(error.code, "untrusted");
    assert.match(error.message, /^Cannot trust "localhost:\d+"/);
    assert.equal(server.received, "hello ca".length);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(other, { recursive: true });
  }
});

Deno.test("connectTrusted() in pin mode accepts the pinned CA and refuses another before sending", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  try {
    const certs = await ensureServerCertificates(dir);
    await using server = echoServer(certs);
    const colons = certs.caFingerprint.slice(7).toUpperCase().match(/../g)!
      .join(":");
    for (
      const [name, fingerprint] of [
        ["canonical", certs.caFingerprint],
        ["openssl style", colons],
      ]
    ) {
      await t.step(`right fingerprint, ${name}`, async () => {
        using conn = await connectTrusted("127.0.0.1", server.port, {
          kind: "pin",
          fingerprint: fingerprint!,
        });
        assert.equal(await echo(conn, "pinned"), "pinned");
      });
    }
    const before = server.received;
    await t.step("wrong fingerprint", async () => {
      const wrong = `SHA256:${"ab".repeat(32)}`;
      const error = await refusal(connectTrusted("127.0.0.1", server.port, {
        kind: "pin",
        fingerprint: wrong,
      }));
      assert.ok(error instanceof TrustError, String(error));
      assert.equal(error.name, "TrustError");
      assert.equal(error.code, "pin-mismatch");
      assert.ok(error.message.includes(certs.caFingerprint));
      assert.ok(error.message.includes(wrong));
    });
    await t.step("malformed fingerprint", async () => {
      await assert.rejects(
        connectTrusted("127.0.0.1", server.port, {
          kind: "pin",
          fingerprint: "SHA256:xyz",
        }),
        TypeError,
      );
    });
    await server[Symbol.asyncDispose]();
    assert.equal(server.received, before, "no byte reached the server");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("connectTrusted() in tofu mode records a server, accepts it again and refuses a changed one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  const regenerated = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  try {
    const knownHostsPath = join(dir, "config", "ftv", "known_hosts");
    const mode = { kind: "tofu", knownHostsPath } as const;
    const certs = await ensureServerCertificates(dir);
    const added: string[] = [];
    const onNewHost = (host: string, fingerprint: string) =>
      added.push(`${host} ${fingerprint}`);
    let port: number;
    {
      await using server = echoServer(certs);
      port = server.port;
      {
        using conn = await connectTrusted("127.0.0.1", port, mode, {
          onNewHost,
        });
        assert.equal(await echo(conn, "first"), "first");
      }
      assert.deepEqual(added, [`127.0.0.1:${port} ${certs.caFingerprint}`]);
      assert.equal(
        await Deno.readTextFile(knownHostsPath),
        `127.0.0.1:${port} ${certs.caFingerprint}\n`,
      );
      {
        using conn = await connectTrusted("127.0.0.1", port, mode, {
          onNewHost,
        });
        assert.equal(await echo(conn, "again"), "again");
      }
      assert.equal(added.length, 1, "a known server is not recorded twice");
    }

    // Same address, certificates made afresh: a new CA.
    const fresh = await ensureServerCertificates(regenerated);
    assert.notEqual(fresh.caFingerprint, certs.caFingerprint);
    await using impostor = echoServer(fresh, port);
    const before = await Deno.readTextFile(knownHostsPath);
    const error = await refusal(
      connectTrusted("127.0.0.1", port, mode, { onNewHost }),
    );
    assert.ok(error instanceof TrustError, String(error));
    assert.equal(error.code, "host-changed");
    assert.match(error.message, /^Cannot trust "127\.0\.0\.1:\d+"/);
    assert.ok(
      error.message.includes(
        "WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!",
      ),
    );
    assert.ok(
      error.message.includes(certs.caFingerprint),
      "names the old fingerprint",
    );
    assert.ok(
      error.message.includes(fresh.caFingerprint),
      "names the new fingerprint",
    );
    assert.ok(error.message.includes(`line 1 in ${knownHostsPath}`));
    assert.equal(await Deno.readTextFile(knownHostsPath), before);
    assert.equal(added.length, 1);
    await impostor[Symbol.asyncDispose]();
    assert.equal(impostor.received, 0, "no byte reached the changed server");
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(regenerated, { recursive: true });
  }
});

Deno.test("connectTrusted() refuses a server that does not speak TLS 1.3", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  try {
    const certs = await ensureServerCertificates(dir);
    let received = 0;
    const sockets = new Set<{ destroy(): void }>();
    const server = nodeTlsServer(
      { cert: certs.certPem, key: certs.keyPem, maxVersion: "TLSv1.2" },
      (socket) => {
        socket.on("data", (chunk: Uint8Array) => received += chunk.length);
        socket.on("error", () => {});
        socket.on("end", () => socket.end());
      },
    );
    server.on("connection", (socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve)
    );
    const { port } = server.address() as { port: number };
    try {
      const error = await refusal(connectTrusted("127.0.0.1", port, {
        kind: "ca",
        caPem: certs.caCertPem,
      }));
      assert.ok(error instanceof TrustError, String(error));
      assert.equal(error.code, "tls-version");
      assert.match(error.message, /TLS 1\.3/);
      assert.equal(received, 0);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("connectTrusted() reports a closed port as ConnectionError", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  const error = await refusal(connectTrusted("127.0.0.1", port, {
    kind: "pin",
    fingerprint: `SHA256:${"00".repeat(32)}`,
  }));
  assert.ok(error instanceof ConnectionError, String(error));
  assert.match(
    error.message,
    /^Cannot connect to "127\.0\.0\.1:\d+": connection refused/,
  );
});

Deno.test("connectTrusted() gives up on a server that never answers the handshake", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const silent: Deno.Conn[] = [];
  const accepting = (async () => {
    try {
      for await (const conn of listener) silent.push(conn);
    } catch {
      // Listener closed.
    }
  })();
  try {
    const error = await refusal(
      connectTrusted("127.0.0.1", listener.addr.port, {
        kind: "pin",
        fingerprint: `SHA256:${"00".repeat(32)}`,
      }, { timeoutMs: 200 }),
    );
    assert.ok(error instanceof ConnectionError, String(error));
    assert.match(error.message, /no TLS handshake within 200 ms/);
  } finally {
    listener.close();
    await accepting;
    for (const conn of silent) conn.close();
  }
});

Deno.test("fingerprintOfPem() matches node:crypto's SHA-256 fingerprint of the first certificate", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  try {
    const certs = await ensureServerCertificates(dir);
    const expected = normalizeFingerprint(
      new X509Certificate(certs.certPem).fingerprint256,
    );
    assert.equal(
      await fingerprintOfPem(certs.certPem + certs.caCertPem),
      expected,
    );
    await assert.rejects(fingerprintOfPem("no pem here"), SyntaxError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadCertificates() reads --cert/--key files and rejects wrong ones", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ftv-tls-test-" });
  try {
    const certs = await ensureServerCertificates(dir);
    const certPath = join(dir, "chain.pem");
    const keyPath = join(dir, "key.pem");
    await Deno.writeTextFile(certPath, certs.certPem + certs.caCertPem);
    await Deno.writeTextFile(keyPath, certs.keyPem);
    await t.step("good files", async () => {
      const loaded = await loadCertificates(certPath, keyPath);
      assert.equal(loaded.certPem, certs.certPem + certs.caCertPem);
      assert.equal(loaded.keyPem, certs.keyPem);
    });
    await t.step("key given as certificate", async () => {
      await assert.rejects(loadCertificates(keyPath, keyPath), SyntaxError);
    });
    await t.step("certificate given as key", async () => {
      await assert.rejects(loadCertificates(certPath, certPath), SyntaxError);
    });
    await t.step("missing file", async () => {
      await assert.rejects(
        loadCertificates(join(dir, "nope.pem"), keyPath),
        (error: Error) =>
          error instanceof Deno.errors.NotFound &&
          /^Cannot load certificate/.test(error.message),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("defaultKnownHostsPath() follows XDG_CONFIG_HOME, then HOME", () => {
  const saved = {
    xdg: Deno.env.get("XDG_CONFIG_HOME"),
    home: Deno.env.get("HOME"),
  };
  try {
    Deno.env.set("XDG_CONFIG_HOME", "/tmp/xdg");
    assert.equal(
      defaultKnownHostsPath(),
      join("/tmp/xdg", "ftv", "known_hosts"),
    );
    Deno.env.delete("XDG_CONFIG_HOME");
    Deno.env.set("HOME", "/home/someone");
    assert.equal(
      defaultKnownHostsPath(),
      join("/home/someone", ".config", "ftv", "known_hosts"),
    );
  } finally {
    for (
      const [name, value] of [["XDG_CONFIG_HOME", saved.xdg], [
        "HOME",
        saved.home,
      ]] as const
    ) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
});

const HAS_OPENSSL = await hasOpenssl();
if (!HAS_OPENSSL) {
  console.warn("tls_test: openssl is not installed; its checks are skipped");
}

/** What `openssl s_client` printed for a handshake with 127.0.0.1:`port`. */
async function sClient(port: number, args: string[]): Promise<string> {
  const { stdout, stderr } = await new Deno.Command("openssl", {
    args: ["s_client", "-connect", `127.0.0.1:${port}`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return decoder.decode(stdout) + decoder.decode(stderr);
}

/**
 * That the server, not the local openssl, ended the handshake: openssl sent
 * its hello and read the server's alert back (a local refusal reads nothing).
 */
function assertRefusedByServer(output: string, what: string): void {
  assert.match(
    output,
    /handshake has read [1-9]\d* bytes and written [1-9]\d* bytes/,
    `${what}: no exchange\n${output}`,
  );
  assert.match(output, /SSL alert number \d+/, `${what}: no alert\n${output}`);
  assert.match(output, /Cipher is \(NONE\)/, `${what}: accepted\n${output}`);
}

Deno.test({
  name:
    "server --tls refuses TLS 1.0 and 1.1 with an alert of its own (openssl)",
  ignore: !HAS_OPENSSL,
  fn: async (t) => {
    await using tmp = await tempDir();
    await using server = await spawnServer(["--dir", tmp.join("srv"), "--tls"]);
    // SECLEVEL=0: the local openssl's own policy must not refuse first.
    const weak = ["-cipher", "DEFAULT:@SECLEVEL=0"];
    for (const [flag, version] of [["-tls1", "1.0"], ["-tls1_1", "1.1"]]) {
      await t.step(`TLS ${version}`, async () => {
        assertRefusedByServer(
          await sClient(server.port, [flag!, ...weak]),
          `TLS ${version}`,
        );
      });
    }
    await t.step(
      "TLS 1.2 from a client that insists is still served",
      async () => {
        const output = await sClient(server.port, ["-tls1_2", ...weak]);
        assert.match(output, /New, TLSv1\.2, Cipher is ECDHE-/, output);
      },
    );
  },
});

Deno.test({
  name:
    "every TLS 1.2 suite server --tls accepts is ECDHE with an AEAD cipher (openssl)",
  ignore: !HAS_OPENSSL,
  fn: async () => {
    const { stdout } = await new Deno.Command("openssl", {
      args: ["ciphers", "-v", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    // `NAME VERSION Kx=.. Au=.. Enc=.. Mac=..`; all but TLS 1.3's can run over 1.2.
    const suites = new Map(
      decoder.decode(stdout).trim().split("\n").map((line) =>
        line.trim().split(/\s+/)
      )
        .filter((fields) => fields[1] !== "TLSv1.3")
        .map((fields) => [fields[0]!, fields.slice(2).join(" ")]),
    );
    assert.ok(suites.size > 30, `only ${suites.size} suites listed`);
    await using tmp = await tempDir();
    await using server = await spawnServer(["--dir", tmp.join("srv"), "--tls"]);
    // Offer every suite not yet seen: the server picks one it accepts, until none is left.
    const accepted: string[] = [];
    const offered = new Set(suites.keys());
    for (let round = 0; round <= suites.size; round++) {
      const output = await sClient(server.port, [
        "-tls1_2",
        "-cipher",
        `${[...offered].join(":")}:@SECLEVEL=0`,
      ]);
      const chosen = /New, TLSv1\.2, Cipher is (\S+)/.exec(output)?.[1];
      if (chosen === undefined) {
        assertRefusedByServer(output, `the ${offered.size} suites left`);
        break;
      }
      assert.ok(offered.delete(chosen), `${chosen} was not offered`);
      accepted.push(chosen);
    }
    assert.ok(accepted.length > 0, "no TLS 1.2 suite was accepted");
    for (const suite of accepted) {
      assert.match(suites.get(suite)!, /^Kx=ECDH .*Mac=AEAD$/, suite);
    }
  },
});
