/**
 * Admission under a slowloris: idle sockets that never say hello must not
 * keep a prompt client out, even from the client's own address, and one
 * address cannot take every slot with sessions that did say hello.
 */

import assert from "node:assert/strict";
import {
  pollUntil,
  rawSession,
  runCli,
  spawnServer,
  tempDir,
} from "./test_util.ts";

const IDLE = 300;

/** Opens `count` sockets to `port` that never send a byte. */
async function idleSockets(port: number, count: number): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < count; i++) {
    conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  }
  return conns;
}

function closeAll(conns: Deno.Conn[]): void {
  for (const conn of conns) {
    try {
      conn.close();
    } catch {
      // Closed by the server already.
    }
  }
}

Deno.test("a client that speaks promptly gets in while 300 idle sockets from its own address are held open", async () => {
  await using tmp = await tempDir();
  // A handshake timeout of ten minutes: only admission can let the client in.
  await using server = await spawnServer([
    "--dir",
    tmp.join("srv"),
    "--handshake-timeout",
    "600",
  ]);
  const idle = await idleSockets(server.port, IDLE);
  try {
    await pollUntil(
      () =>
        (server.log().match(/Connection established with/g)?.length ?? 0) +
            (server.log().match(/Refused connection from/g)?.length ?? 0) >=
          IDLE,
      { what: "the server to take in every idle socket" },
    );
    const started = performance.now();
    const result = await runCli([
      "list",
      "--host",
      "127.0.0.1",
      "--port",
      String(server.port),
    ]);
    const seconds = (performance.now() - started) / 1000;
    assert.equal(result.code, 0, result.stderr);
    console.log(
      `  got in after ${seconds.toFixed(2)} s under ${IDLE} idle sockets`,
    );
    assert.match(server.log(), /Dropped connection from .*had not said hello/);
  } finally {
    closeAll(idle);
  }
});

Deno.test("one address holds at most --max-per-address sessions; others still get in", async () => {
  await using tmp = await tempDir();
  await using server = await spawnServer([
    "--dir",
    tmp.join("srv"),
    "--max-per-address",
    "4",
  ]);
  const sessions = await Promise.all(
    Array.from({ length: 4 }, () => rawSession(server.port)),
  );
  try {
    const refused = await runCli([
      "list",
      "--host",
      "127.0.0.1",
      "--port",
      String(server.port),
    ]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /too many connections/);
    assert.match(server.log(), /4 connections from 127\.0\.0\.1 already open/);
    sessions.pop()![Symbol.dispose]();
    await pollUntil(
      () =>
        (server.log().match(/Connection with \S+ closed/g)?.length ?? 0) >= 1,
      { what: "the server to see the session end" },
    );
    const admitted = await runCli([
      "list",
      "--host",
      "127.0.0.1",
      "--port",
      String(server.port),
    ]);
    assert.equal(admitted.code, 0, admitted.stderr);
  } finally {
    for (const session of sessions) session[Symbol.dispose]();
  }
});
