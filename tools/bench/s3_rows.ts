/**
 * The S3 rows: ftv `send` and `get` against a server whose store is a Ceph
 * RGW bucket (a single-node Ceph with two gateways, started for these rows
 * by `tools/ceph/start.sh` and stopped by PID after them), to compare with
 * the local-folder `send` and `get` rows of the same run; and the
 * aggregate throughput of 12 clients spread over 3 such servers (and, to
 * see what the extra servers bring, over 1).
 *
 * @module
 */

import { formatBytes } from "../../base/bytes.ts";
import { S3_ENV } from "../../store.ts";
import { type CephCluster, cephMissing, startCeph } from "../ceph/cluster.ts";
import { HOST } from "./common.ts";
import {
  type ClientRun,
  ftvArgs,
  type FtvServerProcess,
  receiverFlags,
  runFtvClient,
  startFtvServer,
  type Usage,
} from "./ftv.ts";
import { usageFields } from "./ftv_rows.ts";
import { type Context, type Row, type Sample, skippedRow } from "./rows.ts";
import { discard, freshDir } from "./set_aside.ts";
import { checkCopy, makeSource, type Source } from "./sources.ts";

/** The bucket the rows use. */
const BUCKET = "ftv-bench";
/** Clients and servers of the aggregate rows. */
const CLIENTS = 12;
const SERVERS = 3;

/** The cluster the S3 rows share: started by the first set-up, stopped by the last tear-down. */
class SharedCeph {
  #cluster: Promise<CephCluster> | undefined;
  #users = 0;

  async acquire(): Promise<CephCluster> {
    this.#users++;
    this.#cluster ??= startCeph().then((cluster) => {
      for (const name of S3_ENV) {
        const value = cluster.env[name];
        if (value !== undefined) Deno.env.set(name, value);
      }
      return cluster;
    });
    return await this.#cluster;
  }

  async release(): Promise<void> {
    if (--this.#users > 0 || !this.#cluster) return;
    const cluster = await this.#cluster.catch(() => undefined);
    this.#cluster = undefined;
    await cluster?.stop();
  }
}

/** An S3-backed server on `prefix` of the bench's bucket. */
function s3Server(
  ctx: Context,
  cluster: CephCluster,
  prefix: string,
): Promise<FtvServerProcess> {
  return startFtvServer(`${ctx.work}/s3-server`, [
    "--store",
    `s3://${BUCKET}/${prefix}`,
    "--s3-endpoint",
    cluster.endpoints.join(","),
  ], [
    "--allow-net",
    "--allow-read",
    "--allow-write",
    `--allow-env=${S3_ENV.join(",")}`,
  ]);
}

/** The S3 rows `--only` asks for. */
export async function s3Rows(ctx: Context): Promise<Row[]> {
  const want = (id: string) => ctx.options.only.has(id);
  const ids = ["s3-send", "s3-get", "s3-clients-3", "s3-clients-1"];
  if (!ids.some(want)) return [];
  const missing = await cephMissing();
  if (missing) {
    return ids.filter(want).map((id) =>
      skippedRow(id, `ftv ${id} (S3)`, missing, "ftv")
    );
  }
  const ceph = new SharedCeph();
  const rows: Row[] = [];
  if (want("s3-send")) rows.push(sendRow(ctx, ceph));
  if (want("s3-get")) rows.push(getRow(ctx, ceph));
  for (const servers of [SERVERS, 1]) {
    if (want(`s3-clients-${servers}`)) {
      rows.push(clientsRow(ctx, ceph, servers));
    }
  }
  return rows;
}

/** A row that holds the shared cluster from its set-up to its tear-down. */
function s3Row(
  ceph: SharedCeph,
  row: Omit<Row, "kind" | "samples" | "setup" | "teardown">,
  setup: (cluster: CephCluster) => Promise<void> = () => Promise.resolve(),
): Row & { cluster?: CephCluster } {
  const held: Row & { cluster?: CephCluster } = {
    ...row,
    kind: "ftv",
    samples: [],
    async setup() {
      held.cluster = await ceph.acquire();
      await setup(held.cluster);
    },
    async teardown() {
      if (held.cluster) await ceph.release();
    },
  };
  return held;
}

/** One ftv client run against a fresh S3-backed server on `prefix`. */
async function oneClient(
  ctx: Context,
  cluster: CephCluster,
  prefix: string,
  args: (port: number) => string[],
): Promise<{ client: ClientRun; usage: Usage }> {
  const server = await s3Server(ctx, cluster, prefix);
  let client: ClientRun;
  try {
    client = await runFtvClient(
      args(server.port),
      ctx.timeout(ctx.source.size),
    );
  } catch (error) {
    await server.stop();
    throw error;
  }
  return { client, usage: await server.stop() };
}

/** `ftv send` of the random file to a fresh S3-backed server. */
function sendRow(ctx: Context, ceph: SharedCeph): Row {
  const row = s3Row(ceph, {
    id: "s3-send",
    label: "ftv send, server on S3 (Ceph RGW)",
    run: async (index) => {
      const { client, usage } = await oneClient(
        ctx,
        row.cluster!,
        "send",
        (
          port,
        ) => ["send", ctx.source.path, "--as", "bench.bin", ...ftvArgs(port)],
      );
      checkDigest(client, ctx.source, index, row.label);
      return {
        ms: client.ms,
        bytes: ctx.source.size,
        ...usageFields(usage, [client]),
      };
    },
  });
  return row;
}

/** `ftv get` of the random file, stored once in the bucket, from a fresh server. */
function getRow(ctx: Context, ceph: SharedCeph): Row {
  const out = `${ctx.work}/s3-get.bin`;
  const row = s3Row(ceph, {
    id: "s3-get",
    label: "ftv get, server on S3 (Ceph RGW)",
    run: async (index) => {
      await discard(out);
      const { client, usage } = await oneClient(
        ctx,
        row.cluster!,
        "get",
        (port) => [
          "get",
          "bench.bin",
          "--out",
          out,
          ...receiverFlags(),
          ...ftvArgs(port),
        ],
      );
      await checkCopy(out, ctx.source, index === 0, row.label);
      return {
        ms: client.ms,
        bytes: ctx.source.size,
        ...usageFields(usage, [client]),
      };
    },
  }, async (cluster) => {
    const server = await s3Server(ctx, cluster, "get");
    try {
      await runFtvClient(
        ["send", ctx.source.path, "--as", "bench.bin", ...ftvArgs(server.port)],
        ctx.timeout(ctx.source.size),
      );
    } finally {
      await server.stop();
    }
  });
  return row;
}

/** {@linkcode CLIENTS} clients sending the small file at once, spread over `servers` S3-backed servers. */
function clientsRow(ctx: Context, ceph: SharedCeph, servers: number): Row {
  const size = ctx.options.clientSize;
  const row = s3Row(ceph, {
    id: `s3-clients-${servers}`,
    label: `ftv send, ${CLIENTS} clients over ${servers} S3 server(s) (${
      formatBytes(size)
    } each)`,
    run: async (index) => {
      const started: FtvServerProcess[] = [];
      const usages: Usage[] = [];
      let ms = 0;
      let clients: ClientRun[] = [];
      try {
        for (let i = 0; i < servers; i++) {
          started.push(await s3Server(ctx, row.cluster!, `clients-${servers}`));
        }
        const hosts = started.map((server) => `${HOST}:${server.port}`);
        const t0 = performance.now();
        clients = await Promise.all(
          Array.from({ length: CLIENTS }, (_, k) =>
            runFtvClient([
              "send",
              ctx.small!.path,
              "--as",
              `c${k}.bin`,
              // Each client starts on its own server and may go on through any.
              "--host",
              [...hosts.slice(k % servers), ...hosts.slice(0, k % servers)]
                .join(","),
              "--quiet",
              "--json",
            ], ctx.timeout(CLIENTS * size))),
        );
        ms = performance.now() - t0;
      } finally {
        for (const server of started) usages.push(await server.stop());
      }
      for (const client of clients) {
        checkDigest(client, ctx.small!, index, row.label);
      }
      return {
        ms,
        bytes: CLIENTS * size,
        ...usageFields(usages[0] ?? {}, clients),
      } satisfies Sample;
    },
  }, async () => {
    ctx.small ??= await makeSource(`${ctx.work}/small.bin`, size);
    await freshDir(`${ctx.work}/s3-server`);
  });
  return row;
}

/** Throws unless `client` reported the digest of `source` (checked every run: it costs nothing). */
function checkDigest(
  client: ClientRun,
  source: Source,
  _index: number,
  label: string,
): void {
  if (client.result.sha256 !== source.sha256) {
    throw new Error(
      `${label}: the server verified SHA-256 ${client.result.sha256}, not ${source.sha256}`,
    );
  }
}
