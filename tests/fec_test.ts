/**
 * Parity on the wire: lost and damaged chunks rebuilt without a round
 * trip, in both directions, with resume, compression and TLS, and `auto`
 * adding parity only once loss is seen.
 */

import assert from "node:assert/strict";
import { Logger } from "../base/log.ts";
import { get, send } from "../client.ts";
import { ErrorSimulator } from "../faults/simulator.ts";
import { serve, type ServeOptions } from "../server.ts";
import {
  LogCapture,
  runCli,
  sha256File,
  spawnProxy,
  spawnServer,
  type TempDir,
  tempDir,
  writeRandomFile,
} from "./test_util.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

function quiet(): Logger {
  return new Logger("FileTransferClient", { level: "ERROR" });
}

async function server(tmp: TempDir, options: ServeOptions = {}) {
  return await serve({
    host: "127.0.0.1",
    port: 0,
    dir: tmp.join("srv"),
    chunkSize: 16 * KiB,
    fsync: false,
    log: new Logger("FileTransferServer", { level: "ERROR" }),
    ...options,
  });
}

Deno.test("send --fec 8+2 over a sender losing and damaging 5% rebuilds chunks without asking for most", async () => {
  await using tmp = await tempDir();
  await using srv = await server(tmp);
  const source = tmp.join("data.bin");
  await writeRandomFile(source, 2 * MiB + 333);
  const sent = await send(source, {
    host: "127.0.0.1",
    port: srv.addr.port,
    fec: { k: 8, m: 2 },
    simulator: new ErrorSimulator({ errorRate: 0.05, seed: 11 }),
    log: quiet(),
  });
  assert.equal(sent.sha256, await sha256File(source));
  assert.equal(await sha256File(tmp.join("srv/data.bin")), sent.sha256);
  const stored = (await Deno.stat(tmp.join("srv/data.bin"))).size;
  assert.equal(stored, 2 * MiB + 333, "no parity in the stored file");
});

Deno.test("get --fec from a server losing 5% rebuilds chunks from parity, logs each, and ends verified", async () => {
  await using tmp = await tempDir();
  const logs = new LogCapture();
  await using srv = await server(tmp, {
    simulateErrors: { errorRate: 0.05, seed: 3 },
  });
  const source = tmp.join("data.bin");
  await writeRandomFile(source, 3 * MiB);
  await send(source, { host: "127.0.0.1", port: srv.addr.port, log: quiet() });
  const out = tmp.join("back.bin");
  const got = await get("data.bin", {
    host: "127.0.0.1",
    port: srv.addr.port,
    out,
    fsync: false,
    fec: { k: 8, m: 2 },
    log: logs.logger("FileTransferClient", "INFO"),
  });
  assert.equal(await sha256File(out), await sha256File(source));
  assert.ok((got.rebuiltChunks ?? 0) > 0, "some chunks were rebuilt");
  const rebuilt = logs.lines.filter((l) =>
    /Rebuilt chunk \d+ from parity \(group \d+\)/.test(l)
  );
  assert.equal(rebuilt.length, got.rebuiltChunks);
});

Deno.test("get --fec auto adds no parity on a clean link, and parity once loss is reported", async (t) => {
  await using tmp = await tempDir();
  const source = tmp.join("data.bin");
  await writeRandomFile(source, 4 * MiB);
  await t.step(
    "clean link: the wire carries the file and no parity",
    async () => {
      await using srv = await server(tmp);
      await send(source, {
        host: "127.0.0.1",
        port: srv.addr.port,
        log: quiet(),
      });
      const got = await get("data.bin", {
        host: "127.0.0.1",
        port: srv.addr.port,
        out: tmp.join("clean.bin"),
        fsync: false,
        compress: "none",
        fec: "auto",
        log: quiet(),
      });
      assert.equal(got.rebuiltChunks, 0);
      assert.ok(
        got.wireBytes < 4 * MiB * 1.01,
        `${got.wireBytes} bytes on the wire`,
      );
    },
  );
  await t.step(
    "lossy link: parity follows the reports and rebuilds",
    async () => {
      await using srv = await server(tmp, {
        simulateErrors: { errorRate: 0.08, seed: 5 },
      });
      const got = await get("data.bin", {
        host: "127.0.0.1",
        port: srv.addr.port,
        out: tmp.join("lossy.bin"),
        fsync: false,
        compress: "none",
        fec: "auto",
        log: quiet(),
      });
      assert.equal(
        await sha256File(tmp.join("lossy.bin")),
        await sha256File(source),
      );
      assert.ok(
        (got.rebuiltChunks ?? 0) > 0,
        "auto added parity that rebuilt chunks",
      );
    },
  );
});

Deno.test("--fec works with compression, TLS and a connection cut midway (resume)", async () => {
  await using tmp = await tempDir();
  const dir = tmp.join("srv");
  await using srv = await spawnServer([
    "--dir",
    dir,
    "--tls",
    "--chunk-size",
    String(16 * KiB),
    "--simulate-errors",
    "--error-rate",
    "0.05",
    "--seed",
    "9",
  ]);
  await using proxy = await spawnProxy(srv.port, [
    "--cut-after",
    String(600 * KiB),
  ]);
  const source = tmp.join("log.txt");
  const line = "2026-12-06 12:00:00 - svc - INFO - request served in 12 ms\n";
  await Deno.writeTextFile(
    source,
    line.repeat(Math.ceil(3 * MiB / line.length)),
  );
  const common = [
    "--host",
    "127.0.0.1",
    "--tls",
    "--known-hosts",
    tmp.join("known_hosts"),
    "--fec",
    "8+2",
    "--compress",
    "zstd",
    "--retry-delay",
    "0.05",
  ];
  const sent = await runCli([
    "send",
    source,
    "--port",
    String(srv.port),
    ...common,
  ]);
  assert.equal(sent.code, 0, sent.stderr);
  const out = tmp.join("back.txt");
  const got = await runCli([
    "get",
    "log.txt",
    "--out",
    out,
    "--json",
    "--port",
    String(proxy.port),
    "--max-retries",
    "10",
    ...common,
  ]);
  assert.equal(got.code, 0, got.stderr);
  const result = JSON.parse(got.stdout);
  assert.ok(result.connections > 1, "the cut connection was resumed");
  assert.ok(result.resumedBytes > 0, "with the chunks held before the cut");
  assert.equal(await sha256File(out), await sha256File(source));
});
