/**
 * Several stateless ftv servers on one real S3 store: a single-node Ceph
 * (one mon, one mgr, one OSD, two RADOS gateways, cephx) started from
 * nothing for this file by `tools/ceph/start.sh` and stopped by PID at its
 * end. Every server keeps its files in the same bucket and reaches both
 * gateways; clients name all the servers and move on when one fails.
 *
 * Needs Debian's `ceph` and `radosgw` (`tools/ceph/ensure.sh`): without
 * them the test is skipped, saying so; with `FTV_REQUIRE_CEPH=1` (CI) it
 * runs anyway and fails.
 */

import assert from "node:assert/strict";
import { Logger } from "../base/log.ts";
import { get, send } from "../client.ts";
import { FtvClient, type ServerAddress } from "../client/ftv_client.ts";
import { Bucket } from "../store/s3/bucket.ts";
import { S3Client } from "../store/s3/client.ts";
import {
  type CephCluster,
  cephMissing,
  startCeph,
} from "../tools/ceph/cluster.ts";
import { tusUpload } from "../tools/tus_client.ts";
import { SERVER_READY } from "../tools/harness.ts";
import { S3_ENV } from "../store.ts";
import {
  pollUntil,
  sameBytes,
  type ServiceProcess,
  sha256File,
  spawnService,
  type TempDir,
  tempDir,
  writeRandomFile,
} from "./test_util.ts";

const MB = 1_000_000;
const BUCKET = "ftv-test";
const LEASE_SECONDS = "3";
const missing = await cephMissing();
const required = Deno.env.get("FTV_REQUIRE_CEPH") === "1";
if (missing && !required) {
  console.error(`s3_test.ts: skipped: ${missing}`);
}

function quiet(): Logger {
  return new Logger("FileTransferClient", { level: "ERROR" });
}

/** The cluster, the bucket as the test sees it, and the servers on it. */
interface World {
  tmp: TempDir;
  ceph: CephCluster;
  bucket: Bucket;
  servers: ServiceProcess[];
}

/** `ftv server` on the bucket under `prefix`, reaching gateway a first, then b. */
function s3Server(world: World, prefix: string, extra: string[] = []) {
  return spawnService(
    [
      "server",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      "--dir",
      world.tmp.join(`srv-${world.servers.length}`),
      "--store",
      `s3://${BUCKET}/${prefix}`,
      "--s3-endpoint",
      world.ceph.endpoints.join(","),
      "--s3-lease",
      LEASE_SECONDS,
      "--no-fsync",
      "--http",
      "0",
      ...extra,
    ],
    SERVER_READY,
    [
      "--allow-net",
      "--allow-read",
      "--allow-write",
      `--allow-env=${S3_ENV.join(",")}`,
    ],
  );
}

function address(server: ServiceProcess): ServerAddress {
  return { host: "127.0.0.1", port: server.port };
}

function httpPort(server: ServiceProcess): number {
  return Number(/Serving HTTP on \S+:(\d+)/.exec(server.log())![1]);
}

/** The parts the resume record of `name` lists (0 while there is none). */
async function recordedParts(world: World, key: string): Promise<number> {
  const found = await world.bucket.getText(key);
  if (!found) return 0;
  return (JSON.parse(found.text) as { parts: unknown[] }).parts.length;
}

/** The digest in the metadata of the object `key`, after checking its bytes have it. */
async function storedDigest(world: World, key: string): Promise<string> {
  const head = await world.bucket.head(key);
  assert.ok(head, `${key} is stored`);
  const response = await world.bucket.client.open({ method: "GET", key });
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  for await (const piece of response.body!) hash.update(piece);
  const actual = hash.digest("hex");
  assert.equal(
    head.meta["ftv-sha256"],
    actual,
    `${key}'s bytes have its digest`,
  );
  return actual;
}

Deno.test({
  name:
    "three ftv servers on one Ceph RGW bucket continue each other's transfers",
  ignore: missing !== undefined && !required,
}, async (t) => {
  await using tmp = await tempDir();
  const started = performance.now();
  await using ceph = await startCeph();
  console.error(
    `  Ceph up in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  for (
    const name of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"]
  ) {
    Deno.env.set(name, ceph.env[name]!);
  }
  const client = new S3Client({
    endpoints: ceph.endpoints,
    bucket: BUCKET,
    region: ceph.env.AWS_REGION!,
    accessKeyId: ceph.env.AWS_ACCESS_KEY_ID!,
    secretAccessKey: ceph.env.AWS_SECRET_ACCESS_KEY!,
  });
  const world: World = { tmp, ceph, bucket: new Bucket(client), servers: [] };
  try {
    await world.bucket.ensure();
    for (let i = 0; i < 3; i++) world.servers.push(await s3Server(world, "t"));
    await runSteps(t, world);
  } finally {
    await Promise.all(world.servers.map((server) => server.stop()));
    client.close();
  }
});

/** `t.step`, printing the end of every server's log when the step fails. */
function stepper(t: Deno.TestContext, world: World) {
  return (name: string, fn: () => Promise<void>) =>
    t.step(name, async () => {
      try {
        await fn();
      } catch (error) {
        for (const [i, server] of world.servers.entries()) {
          const lines = server.log().trimEnd().split("\n").slice(-30);
          console.error(`--- server ${i}:\n${lines.join("\n")}`);
        }
        throw error;
      }
    });
}

async function runSteps(t: Deno.TestContext, world: World): Promise<void> {
  const step = stepper(t, world);
  const [a, b, c] = world.servers as [
    ServiceProcess,
    ServiceProcess,
    ServiceProcess,
  ];
  const source = world.tmp.join("big.bin");
  await writeRandomFile(source, 200 * MB);
  const digest = await sha256File(source);

  await step(
    "200 MB sent through A, A killed with SIGKILL, resumed through B",
    async () => {
      const sending = send(source, {
        servers: [address(a), address(b), address(c)],
        as: "big.bin",
        log: quiet(),
        retryDelayMs: 200,
      });
      await pollUntil(
        async () =>
          await recordedParts(world, "t/.ftv/uploads/big.bin.json") >= 2,
        { what: "two parts recorded", timeoutMs: 60_000, intervalMs: 50 },
      );
      a.kill("SIGKILL");
      const result = await sending;
      assert.equal(result.sha256, digest);
      assert.ok(
        result.resumedBytes > 0,
        `resumed ${result.resumedBytes} bytes`,
      );
      assert.ok((result.connections ?? 1) >= 2);
      assert.match(b.log(), /Resuming s3:\/\/ftv-test\/t\/big\.bin/);
      assert.equal(await storedDigest(world, "t/big.bin"), digest);
    },
  );

  await step("get of it from C", async () => {
    const out = world.tmp.join("from-c.bin");
    const result = await get("big.bin", { ...address(c), out, log: quiet() });
    assert.equal(result.sha256, digest);
    assert.ok(await sameBytes(out, source));
  });

  await step(
    "one name sent through B and C at once ends as exactly one input",
    async () => {
      const mtime = new Date(2024, 0, 1);
      for (let round = 0; round < 3; round++) {
        const inputs = [
          world.tmp.join(`r${round}b.bin`),
          world.tmp.join(`r${round}c.bin`),
        ];
        for (const input of inputs) {
          await writeRandomFile(input, 20 * MB);
          await Deno.utime(input, mtime, mtime); // Same size and mtime: only the bytes differ.
        }
        const digests = await Promise.all(inputs.map(sha256File));
        const results = await Promise.allSettled(
          inputs.map((input, i) =>
            send(input, {
              ...address([b, c][i]!),
              as: "race.bin",
              log: quiet(),
            })
          ),
        );
        assert.ok(
          results.some((r) => r.status === "fulfilled"),
          "one of them is stored",
        );
        const stored = await storedDigest(world, "t/race.bin");
        assert.ok(digests.includes(stored), `round ${round}: stored ${stored}`);
      }
    },
  );

  await step(
    "a radosgw killed mid-transfer is survived through the other gateway",
    async () => {
      const input = world.tmp.join("gateway.bin");
      await writeRandomFile(input, 100 * MB);
      const sending = send(input, {
        ...address(b),
        as: "gateway.bin",
        log: quiet(),
        limitRate: 40 * MB,
      });
      await pollUntil(
        async () =>
          await recordedParts(world, "t/.ftv/uploads/gateway.bin.json") >= 1,
        { what: "a part recorded", timeoutMs: 60_000, intervalMs: 50 },
      );
      await world.ceph.killGateway("a");
      const result = await sending;
      assert.equal(result.sha256, await sha256File(input));
      assert.equal(result.connections, 1, "the client never noticed");
      assert.equal(await storedDigest(world, "t/gateway.bin"), result.sha256);
      await world.ceph.restartGateway("a");
    },
  );

  await step("list agrees on every server, a new one included", async () => {
    world.servers.push(await s3Server(world, "t"));
    const views = [];
    for (const server of [b, c, world.servers[3]!]) {
      using client = await FtvClient.connect({
        ...address(server),
        log: quiet(),
      });
      views.push(await client.listTree());
    }
    assert.deepEqual(views[0]!.files.map((f) => f.name), [
      "big.bin",
      "gateway.bin",
      "race.bin",
    ]);
    assert.deepEqual(views[1], views[0]);
    assert.deepEqual(views[2], views[0]);
  });

  await step("a tus upload cut on B is finished through C", async () => {
    const input = world.tmp.join("tus.bin");
    await writeRandomFile(input, 24 * MB);
    const first = await tusUpload(input, {
      endpoint: `http://127.0.0.1:${httpPort(b)}/files/`,
      name: "tus.bin",
      chunkSize: 5 * MB,
      stopAfter: 10 * MB,
    });
    assert.ok(first.stoppedAt! >= 10 * MB);
    const id = first.url.slice(first.url.lastIndexOf("/") + 1);
    await tusUpload(input, {
      uploadUrl: `http://127.0.0.1:${httpPort(c)}/uploads/${id}`,
      name: "tus.bin",
      chunkSize: 5 * MB,
    });
    assert.equal(
      await storedDigest(world, "t/tus.bin"),
      await sha256File(input),
    );
  });

  await step(
    "an abandoned upload is aborted after the part TTL",
    async () => {
      const sweeper = await s3Server(world, "sweep", ["--part-ttl", "2"]);
      world.servers.push(sweeper);
      const input = world.tmp.join("abandoned.bin");
      await writeRandomFile(input, 60 * MB);
      const stop = new AbortController();
      const sending = send(input, {
        ...address(sweeper),
        log: quiet(),
        limitRate: 20 * MB,
        signal: stop.signal,
      });
      await pollUntil(
        async () =>
          await recordedParts(world, "sweep/.ftv/uploads/abandoned.bin.json") >=
            1,
        { what: "a part recorded", timeoutMs: 60_000, intervalMs: 50 },
      );
      stop.abort();
      await sending.catch(() => undefined);
      // The log line comes through a pipe, maybe after the bucket changed.
      await pollUntil(
        () =>
          /Removed the abandoned upload of abandoned\.bin/.test(sweeper.log()),
        { what: "the sweeper to say it removed the upload", timeoutMs: 30_000 },
      );
      assert.deepEqual(await world.bucket.pendingUploads("sweep/"), []);
      assert.equal(
        await world.bucket.head("sweep/.ftv/uploads/abandoned.bin.json"),
        undefined,
      );
    },
  );
}
