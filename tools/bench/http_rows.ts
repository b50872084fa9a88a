/**
 * The HTTP front door's rows: `curl` downloading and uploading (`-T`) the
 * random file from an `ftv server --http`, tus-js-client uploading it, and
 * the same over HTTPS, each against a fresh server, to compare with the
 * `ftv get`, `ftv send` and `ftv send --tls` rows of the same run.
 *
 * @module
 */

import { MOD_PATH } from "../harness.ts";
import { BenchError, HOST, lastLine } from "./common.ts";
import { runClient } from "./ftv.ts";
import {
  againstServer,
  prepareGetDir,
  STORED,
  usageFields,
} from "./ftv_rows.ts";
import { findTool } from "./processes.ts";
import { type Context, type Row, type Sample, skippedRow } from "./rows.ts";
import { discard, freshDir } from "./set_aside.ts";
import { checkCopy } from "./sources.ts";

const ROOT = MOD_PATH.slice(0, MOD_PATH.lastIndexOf("/"));
/** How the bench runs tus-js-client: `deno run` with the checkout's imports. */
const TUS_CLIENT = [
  "run",
  "--allow-net",
  "--allow-read",
  "--allow-env",
  `${ROOT}/tools/tus_client.ts`,
];

/** What one HTTP row runs: the server's flags and the client command. */
interface HttpPlan {
  id: string;
  label: string;
  tls: boolean;
  /** The server's folder: the get folder (prepared once), or a fresh one. */
  upload: boolean;
  /** The client program and arguments, given the base URL and the CA file. */
  client(base: string, ca: string, out: string): [string, string[]];
}

/** The HTTP rows `--only` asks for, in order. */
export function httpRows(ctx: Context): Row[] {
  const want = (id: string) => ctx.options.only.has(id);
  const curl = findTool("curl");
  const source = ctx.source.path;
  const target = (base: string) => `${base}/files/${STORED}`;
  const put = (base: string, ca?: string): [string, string[]] => [curl!, [
    "-sSf",
    ...(ca ? ["--cacert", ca] : []),
    "-o",
    "/dev/null",
    "-T",
    source,
    target(base),
  ]];
  const tus = (base: string, ca?: string): [string, string[]] => [
    Deno.execPath(),
    [...TUS_CLIENT, "--endpoint", `${base}/files/`, "--file", source]
      .concat(["--name", STORED], ca ? ["--ca", ca] : []),
  ];
  const plans: HttpPlan[] = [
    {
      id: "http-get",
      label: "curl download (HTTP)",
      tls: false,
      upload: false,
      client: (base, _ca, out) => [curl!, ["-sSf", "-o", out, target(base)]],
    },
    {
      id: "http-put",
      label: "curl -T upload (HTTP)",
      tls: false,
      upload: true,
      client: (base) => put(base),
    },
    {
      id: "tus",
      label: "tus-js-client upload (HTTP)",
      tls: false,
      upload: true,
      client: (base) => tus(base),
    },
    {
      id: "https-put",
      label: "curl -T upload (HTTPS)",
      tls: true,
      upload: true,
      client: put,
    },
    {
      id: "https-tus",
      label: "tus-js-client upload (HTTPS)",
      tls: true,
      upload: true,
      client: tus,
    },
  ];
  return plans.filter((plan) => want(plan.id)).map((plan) =>
    !curl && plan.id !== "tus" && plan.id !== "https-tus"
      ? skippedRow(plan.id, plan.label, "curl not installed", "ftv")
      : httpRow(ctx, plan)
  );
}

function httpRow(ctx: Context, plan: HttpPlan): Row {
  const getDir = `${ctx.work}/ftv-get`;
  const sendDir = `${ctx.work}/ftv-http`;
  const out = `${ctx.work}/http-out.bin`;
  const row: Row = {
    id: plan.id,
    label: plan.label,
    kind: "ftv",
    samples: [],
    run: (index) => httpRun(ctx, plan, index, { getDir, sendDir, out }),
  };
  if (!plan.upload) row.setup = () => prepareGetDir(ctx, getDir, STORED);
  return row;
}

async function httpRun(
  ctx: Context,
  plan: HttpPlan,
  index: number,
  paths: { getDir: string; sendDir: string; out: string },
): Promise<Sample> {
  const dir = plan.upload ? await freshDir(paths.sendDir) : paths.getDir;
  await discard(paths.out);
  const flags = ["--http", "0", ...(plan.tls ? ["--tls"] : [])];
  const { value: client, server } = await againstServer(
    dir,
    { serverFlags: flags },
    (_port, process) => {
      const scheme = plan.tls ? "https" : "http";
      const base = `${scheme}://${
        plan.tls ? "localhost" : HOST
      }:${process.httpPort}`;
      const [program, args] = plan.client(
        base,
        `${dir}/.ftv/tls/ca.pem`,
        paths.out,
      );
      return runClient(program, args, ctx.timeout(ctx.source.size));
    },
  );
  if (client.finished.code !== 0) {
    throw new BenchError(
      `${plan.label} failed: ${lastLine(client.finished.stderr)}`,
    );
  }
  const copy = plan.upload ? `${dir}/${STORED}` : paths.out;
  await checkCopy(copy, ctx.source, index === 0, plan.label);
  await discard(plan.upload ? dir : paths.out);
  return {
    ms: client.finished.ms,
    bytes: ctx.source.size,
    ...usageFields(server, [{
      ms: 0,
      rss: client.rss,
      cpu: client.cpu,
      result: {},
    }]),
  };
}
