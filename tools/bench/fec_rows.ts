/**
 * The parity rows: `get` over a lossy, long link (the server simulating 5%
 * errors, ftv's proxy adding latency each way) with `--fec off` and
 * `--fec auto`, time to verified and repair rounds; `get --fec auto` on a
 * clean link; `send` to a server keeping no parity (what writing parity
 * costs); and the Reed-Solomon code itself, encode and decode on one core.
 *
 * @module
 */

import { ReedSolomon } from "../../engine/parity/reed_solomon.ts";
import { PROXY_READY, startFtv } from "../harness.ts";
import { BenchError } from "./common.ts";
import { ftvArgs, receiverFlags, runFtvClient } from "./ftv.ts";
import {
  againstServer,
  ERROR_RATE,
  prepareGetDir,
  usageFields,
} from "./ftv_rows.ts";
import type { Context, Row } from "./rows.ts";
import { checkCopy } from "./sources.ts";
import { discard } from "./set_aside.ts";

/** One-way latency of the lossy link, in milliseconds. */
export const LINK_LATENCY_MS = 100;
/** Where the parity rows store the random file. */
const STORED = "bench.bin";

/** The parity rows the options ask for. */
export function fecRows(ctx: Context): Row[] {
  const want = (id: string) => ctx.options.only.has(id);
  const rows: Row[] = [];
  for (const mode of ["off", "auto"] as const) {
    if (want(`get-fec-${mode}`)) rows.push(lossyGetRow(ctx, mode));
  }
  if (want("get-fec-clean")) rows.push(cleanGetRow(ctx));
  if (want("rs-encode")) rows.push(codeRow("rs-encode", false));
  if (want("rs-decode")) rows.push(codeRow("rs-decode", true));
  return rows;
}

/** `get --fec MODE` through a proxy adding latency, from a server losing and damaging chunks. */
function lossyGetRow(ctx: Context, mode: "off" | "auto"): Row {
  const dir = `${ctx.work}/ftv-get-fec`;
  const label =
    `ftv get --fec ${mode} (error-rate ${ERROR_RATE}, ${LINK_LATENCY_MS} ms each way)`;
  return getThrough(ctx, `get-fec-${mode}`, label, {
    dir,
    serverFlags: ["--simulate-errors", "--error-rate", ERROR_RATE],
    latencyMs: LINK_LATENCY_MS,
    clientFlags: ["--fec", mode, "--max-retries", "20"],
  });
}

/** `get --fec auto` on a clean link, to set against `get`. */
function cleanGetRow(ctx: Context): Row {
  return getThrough(ctx, "get-fec-clean", "ftv get --fec auto (clean link)", {
    dir: `${ctx.work}/ftv-get-fec`,
    serverFlags: [],
    latencyMs: 0,
    clientFlags: ["--fec", "auto"],
  });
}

interface GetPlan {
  dir: string;
  serverFlags: string[];
  /** 0: straight to the server; else through a proxy with this latency. */
  latencyMs: number;
  clientFlags: string[];
}

function getThrough(
  ctx: Context,
  id: string,
  label: string,
  plan: GetPlan,
): Row {
  const out = `${ctx.work}/ftv-fec-out.bin`;
  return {
    id,
    label,
    kind: "ftv",
    samples: [],
    setup: () => prepareGetDir(ctx, plan.dir, STORED),
    async run(index) {
      await discard(out);
      const { value: client, server } = await againstServer(
        plan.dir,
        { serverFlags: plan.serverFlags },
        (port) =>
          viaProxy(port, plan.latencyMs, (target) =>
            runFtvClient([
              "get",
              STORED,
              "--out",
              out,
              ...receiverFlags(),
              ...plan.clientFlags,
              ...ftvArgs(target),
            ], ctx.timeout(ctx.source.size))),
      );
      await checkCopy(out, ctx.source, index === 0, label);
      await discard(out);
      const { seconds, attempts, retransmittedChunks } = client.result;
      return {
        ms: client.ms,
        bytes: ctx.source.size,
        ...usageFields(server, [client]),
        ...(seconds === undefined ? {} : { ftvSeconds: seconds }),
        ...(attempts === undefined ? {} : { attempts }),
        ...(retransmittedChunks === undefined
          ? {}
          : { retransmitted: retransmittedChunks }),
      };
    },
  };
}

/** Runs `body` against `port` directly, or through a proxy with `latencyMs`. */
async function viaProxy<T>(
  port: number,
  latencyMs: number,
  body: (port: number) => Promise<T>,
): Promise<T> {
  if (latencyMs === 0) return await body(port);
  await using proxy = await startFtv([
    "proxy",
    "--listen",
    "127.0.0.1:0",
    "--target",
    `127.0.0.1:${port}`,
    "--latency",
    String(latencyMs),
  ], { ready: PROXY_READY, logLines: 20 });
  return await body(proxy.port);
}

/** Reed-Solomon 16+2 on 1 MiB shards: encode, or decode two lost data shards. */
function codeRow(id: string, decode: boolean): Row {
  const k = 16;
  const m = 2;
  const size = 1024 * 1024;
  const label = decode
    ? `Reed-Solomon ${k}+${m} decode, 2 data shards lost (one core)`
    : `Reed-Solomon ${k}+${m} encode (one core)`;
  return {
    id,
    label,
    kind: "ftv",
    samples: [],
    run() {
      const code = new ReedSolomon(k, m);
      const data = Array.from({ length: k }, () => new Uint8Array(size));
      for (const shard of data) {
        crypto.getRandomValues(shard.subarray(0, 65536));
      }
      const parity = code.encode(data);
      const groups = 64;
      const started = performance.now();
      for (let g = 0; g < groups; g++) {
        if (!decode) {
          code.encode(data, parity);
          continue;
        }
        const shards: (Uint8Array | undefined)[] = [...data, ...parity];
        shards[3] = undefined;
        shards[9] = undefined;
        const result = code.reconstruct(shards);
        if (!result.ok) throw new BenchError(`Cannot decode: ${result.reason}`);
      }
      return Promise.resolve({
        ms: performance.now() - started,
        bytes: groups * k * size,
      });
    },
  };
}
