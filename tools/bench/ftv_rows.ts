/**
 * The ftv rows: `send`, `get` and the round trip with server and client as
 * separate processes, each against a fresh server; with TLS, with a
 * simulated error rate, without compression, of text and of a tree.
 *
 * @module
 */

import { formatBytes } from "../../base/bytes.ts";
import { BenchError, exists, lastLine } from "./common.ts";
import {
  type ClientRun,
  ftvArgs,
  ftvHelp,
  type FtvServerProcess,
  receiverFlags,
  runFtv,
  runFtvClient,
  startFtvServer,
  type Usage,
} from "./ftv.ts";
import { runCommand } from "./processes.ts";
import {
  type Context,
  fileLoad,
  type Load,
  type Row,
  type Sample,
  skippedRow,
  treeLoad,
} from "./rows.ts";
import { discard, freshDir, releaseSetAside } from "./set_aside.ts";
import { checkCopy, makeSource } from "./sources.ts";
import { treeText } from "./tree.ts";

/** The error rate the sender or server simulates in the error-rate rows. */
export const ERROR_RATE = "0.05";
/** Repair rounds allowed in the error-rate rows, so a bad draw cannot fail a run. */
const ERROR_RETRIES = "20";
/** The name the random file is stored under. */
export const STORED = "bench.bin";

/**
 * A sample's RSS and CPU fields: the server's, and the clients' largest RSS
 * and summed CPU (many clients run at once in one row).
 */
export function usageFields(
  server: Usage,
  clients: ClientRun[],
): Partial<Sample> {
  const fields: Partial<Sample> = {};
  if (server.rss !== undefined) fields.serverRss = server.rss;
  if (server.cpu !== undefined) fields.serverCpu = server.cpu;
  const rss = clients.map((c) => c.rss ?? 0);
  if (Math.max(...rss) > 0) fields.clientRss = Math.max(...rss);
  if (clients.every((c) => c.cpu !== undefined)) {
    fields.clientCpu = clients.reduce((sum, c) => sum + c.cpu!, 0);
  }
  return fields;
}

/**
 * Starts a server on `dir`, frees what was set aside (unless `light`), runs
 * `body` against its port, then stops the server: the timed section.
 */
export async function againstServer<T>(
  dir: string,
  plan: { serverFlags?: string[]; light?: boolean },
  body: (port: number, server: FtvServerProcess) => Promise<T>,
): Promise<{ value: T; server: Usage }> {
  const server = await startFtvServer(dir, plan.serverFlags);
  let usage: Usage = {};
  let value: T;
  try {
    await releaseSetAside(!plan.light);
    value = await body(server.port, server);
  } finally {
    usage = await server.stop();
  }
  return { value, server: usage };
}

/** How {@linkcode ftvRow} runs its client against a fresh server. */
interface FtvRowPlan {
  serverDir: () => Promise<string>;
  serverFlags?: string[];
  clientArgs: (port: number) => string[];
  copy: string;
  bytes: number;
  /** Checks the copy (default: as a copy of the random file). */
  check?: (copy: string, index: number) => Promise<void>;
  /** Copies stay until the bench ends (see `Load.keep`). */
  keepCopy?: boolean;
  /** Moves little: frees nothing set aside (see `Load.light`). */
  light?: boolean;
  after?: () => Promise<void>;
}

/** A row timing one ftv client against a fresh server. */
function ftvRow(
  ctx: Context,
  id: string,
  label: string,
  plan: FtvRowPlan,
): Row {
  const check = plan.check ??
    ((copy, index) => checkCopy(copy, ctx.source, index === 0, label));
  return {
    id,
    label,
    kind: "ftv",
    samples: [],
    async run(index) {
      const dir = await plan.serverDir();
      await discard(plan.copy, plan.keepCopy);
      const { value: client, server } = await againstServer(
        dir,
        plan,
        (port) => runFtvClient(plan.clientArgs(port), ctx.timeout(plan.bytes)),
      );
      await check(plan.copy, index);
      await discard(plan.copy, plan.keepCopy);
      await plan.after?.();
      const { bytes, wireBytes, seconds, retransmittedChunks } = client.result;
      return {
        ms: client.ms,
        bytes: plan.bytes,
        ...usageFields(server, [client]),
        ...(seconds === undefined ? {} : { ftvSeconds: seconds }),
        ...(retransmittedChunks === undefined
          ? {}
          : { retransmitted: retransmittedChunks }),
        ...(bytes && wireBytes !== undefined
          ? { wireShare: wireBytes / bytes }
          : {}),
      };
    },
  };
}

/** `ftv send` of `load` (the random file by default) to a fresh server. */
function sendRow(
  ctx: Context,
  id: string,
  label: string,
  extra: string[],
  load: Load = fileLoad(ctx.source, STORED),
  serverFlags: string[] = [],
): Row {
  const sendDir = `${ctx.work}/ftv-send`;
  const row = ftvRow(ctx, id, label, {
    serverDir: () => freshDir(sendDir),
    serverFlags,
    clientArgs: (port) => [
      "send",
      load.path,
      "--as",
      load.name,
      ...extra,
      ...ftvArgs(port),
    ],
    copy: `${sendDir}/${load.name}`,
    bytes: load.bytes,
    check: (copy, index) => load.check(copy, index, label),
    keepCopy: load.keep,
    light: load.light,
    after: () => discard(sendDir),
  });
  if (load.workload) row.workload = load.workload;
  return row;
}

/** `ftv get` of the random file from a server started with `flags`. */
function getRow(
  ctx: Context,
  id: string,
  label: string,
  flags: string[],
  extra: string[],
): Row {
  const getDir = `${ctx.work}/ftv-get`;
  const out = `${ctx.work}/ftv-out.bin`;
  const row = ftvRow(ctx, id, label, {
    serverDir: () => Promise.resolve(getDir),
    serverFlags: flags,
    clientArgs: (port) => [
      "get",
      STORED,
      "--out",
      out,
      ...receiverFlags(),
      ...extra,
      ...ftvArgs(port),
    ],
    copy: out,
    bytes: ctx.source.size,
  });
  row.setup = () => prepareGetDir(ctx, getDir, STORED);
  return row;
}

/** `ftv send --tls`, trusting the server's CA by its file. */
function tlsRow(ctx: Context): Row {
  const sendDir = `${ctx.work}/ftv-send`;
  return ftvRow(ctx, "send-tls", "ftv send --tls", {
    serverDir: () => freshDir(sendDir),
    serverFlags: ["--tls"],
    clientArgs: (port) => [
      "send",
      ctx.source.path,
      "--as",
      STORED,
      "--tls",
      "--ca",
      `${sendDir}/.ftv/tls/ca.pem`,
      ...ftvArgs(port),
    ],
    copy: `${sendDir}/${STORED}`,
    bytes: ctx.source.size,
    after: () => discard(sendDir),
  });
}

/** `ftv client`: the seed's round trip, counting the bytes both ways. */
function roundTripRow(ctx: Context): Row {
  const dir = `${ctx.work}/ftv-client`;
  const out = `${ctx.work}/ftv-out.bin`;
  return ftvRow(ctx, "client", "ftv client (round trip)", {
    serverDir: () => freshDir(dir),
    clientArgs: (port) => [
      "client",
      "--file",
      ctx.source.path,
      "--out",
      out,
      ...receiverFlags(),
      ...ftvArgs(port),
    ],
    copy: out,
    bytes: 2 * ctx.source.size,
    after: () => discard(dir),
  });
}

/** `ftv send` simulating errors at the sender, when this ftv can. */
async function sendErrorRow(ctx: Context): Promise<Row> {
  const label = `ftv send (error-rate ${ERROR_RATE})`;
  const help = await ftvHelp("send");
  if (!help.includes("--simulate-errors") || !help.includes("--error-rate")) {
    return skippedRow(
      "send-err",
      label,
      "`ftv send` has no --simulate-errors/--error-rate (errors are simulated by the sender)",
      "ftv",
    );
  }
  return sendRow(ctx, "send-err", label, [
    "--simulate-errors",
    "--error-rate",
    ERROR_RATE,
    "--max-retries",
    ERROR_RETRIES,
  ]);
}

/** `ftv get` of the tree, stored on the server. */
function treeGetRow(ctx: Context): Row {
  const { work } = ctx;
  const load = treeLoad(ctx.tree!);
  const label = `ftv get, ${treeText()}`;
  const treeGetDir = `${work}/ftv-tree-get`;
  const row = ftvRow(ctx, "tree-get", label, {
    serverDir: () => Promise.resolve(treeGetDir),
    clientArgs: (port) => [
      "get",
      load.name,
      "--out",
      `${work}/ftv-tree-out`,
      ...receiverFlags(),
      ...ftvArgs(port),
    ],
    copy: `${work}/ftv-tree-out`,
    bytes: load.bytes,
    check: (copy, index) => load.check(copy, index, label),
    keepCopy: load.keep,
    light: load.light,
  });
  row.workload = "tree";
  row.setup = () => prepareGetDir(ctx, treeGetDir, load.name, load.path);
  return row;
}

/** The ftv rows `--only` asks for, in order. */
export async function ftvRows(ctx: Context): Promise<Row[]> {
  const rows: Row[] = [];
  const want = (id: string) => ctx.options.only.has(id);
  if (want("send")) rows.push(sendRow(ctx, "send", "ftv send", []));
  if (want("send-none")) {
    rows.push(
      sendRow(ctx, "send-none", "ftv send --compress none", [
        "--compress",
        "none",
      ]),
    );
  }
  if (want("send-text")) {
    const label = `ftv send, ${formatBytes(ctx.text!.size)} ${ctx.text!.kind}`;
    const load = fileLoad(ctx.text!, "text.txt", "text");
    rows.push(sendRow(ctx, "send-text", label, [], load));
  }
  if (want("send-log")) {
    const label = `ftv send, ${formatBytes(ctx.log!.size)} log text`;
    const load = fileLoad(ctx.log!, "log.txt", "text");
    rows.push(sendRow(ctx, "send-log", label, [], load));
  }
  if (want("send-noparity")) {
    const label = "ftv send, server keeping no parity";
    const load = fileLoad(ctx.source, STORED);
    rows.push(
      sendRow(ctx, "send-noparity", label, [], load, ["--parity", "off"]),
    );
  }
  if (want("get")) rows.push(getRow(ctx, "get", "ftv get", [], []));
  if (want("send-tls")) rows.push(tlsRow(ctx));
  if (want("client")) rows.push(roundTripRow(ctx));
  if (want("send-err")) rows.push(await sendErrorRow(ctx));
  if (want("get-err")) {
    rows.push(getRow(ctx, "get-err", `ftv get (error-rate ${ERROR_RATE})`, [
      "--simulate-errors",
      "--error-rate",
      ERROR_RATE,
    ], ["--max-retries", ERROR_RETRIES]));
  }
  if (want("clients")) rows.push(...clientRows(ctx));
  if (want("tree")) {
    const label = `ftv send, ${treeText()}`;
    rows.push(sendRow(ctx, "tree", label, [], treeLoad(ctx.tree!)));
  }
  if (want("tree-get")) rows.push(treeGetRow(ctx));
  return rows;
}

/** Puts `from` into `dir` as `name`: hard links, so it shares the page cache. */
async function linkInto(
  ctx: Context,
  from: string,
  dir: string,
  name: string,
): Promise<void> {
  if ((await Deno.stat(from)).isDirectory) {
    const copied = await runCommand(
      "cp",
      ["-al", from, `${dir}/${name}`],
      ctx.timeout(ctx.source.size),
    );
    if (copied.code !== 0) {
      throw new BenchError(`cp -al failed: ${lastLine(copied.stderr)}`);
    }
  } else {
    try {
      await Deno.link(from, `${dir}/${name}`);
    } catch {
      await Deno.copyFile(from, `${dir}/${name}`);
    }
  }
}

/**
 * Puts the source in the `get` server's folder (a hard link, so it shares the
 * page cache) and lets a server hash it once (`list`), so no timed `get`
 * pays for the digest.
 */
export async function prepareGetDir(
  ctx: Context,
  dir: string,
  name: string,
  from: string = ctx.source.path,
): Promise<void> {
  if (await exists(`${dir}/${name}`)) return;
  await freshDir(dir);
  await linkInto(ctx, from, dir, name);
  const server = await startFtvServer(dir);
  try {
    const list = await runFtv(
      ["list", ...ftvArgs(server.port)],
      ctx.timeout(ctx.source.size),
    );
    if (list.code !== 0) {
      throw new BenchError(`ftv list failed: ${lastLine(list.stderr)}`);
    }
  } finally {
    await server.stop();
  }
}

/** One client sending the small file, and N clients sending it at once. */
function clientRows(ctx: Context): Row[] {
  const { options } = ctx;
  const sizeText = formatBytes(options.clientSize);
  const setup = async () => {
    ctx.small ??= await makeSource(`${ctx.work}/small.bin`, options.clientSize);
  };
  const one: Row = {
    id: "clients",
    label: `ftv send, 1 client (${sizeText})`,
    kind: "ftv",
    samples: [],
    setup,
    run: (index) => oneClient(ctx, one.label, index),
  };
  const many: Row = {
    id: "clients-n",
    label: `ftv send, ${options.clients} clients at once (${sizeText} each)`,
    kind: "ftv",
    samples: [],
    setup,
    run: (index) => manyClients(ctx, many.label, index),
  };
  return [one, many];
}

/** One client sends the small file to a fresh server. */
async function oneClient(
  ctx: Context,
  label: string,
  index: number,
): Promise<Sample> {
  const dir = await freshDir(`${ctx.work}/ftv-clients`);
  const small = ctx.small!;
  const { value: client, server } = await againstServer(
    dir,
    {},
    (port) =>
      runFtvClient(
        ["send", small.path, "--as", "one.bin", ...ftvArgs(port)],
        ctx.timeout(small.size),
      ),
  );
  await checkCopy(`${dir}/one.bin`, small, index === 0, label);
  await discard(dir);
  return {
    ms: client.ms,
    bytes: small.size,
    ...usageFields(server, [client]),
  };
}

/** N clients send the small file to one fresh server at once; timed as one. */
async function manyClients(
  ctx: Context,
  label: string,
  index: number,
): Promise<Sample> {
  const n = ctx.options.clients;
  const dir = await freshDir(`${ctx.work}/ftv-clients`);
  const small = ctx.small!;
  const { value, server } = await againstServer(dir, {}, async (port) => {
    const started = performance.now();
    const settled = await Promise.allSettled(
      Array.from({ length: n }, (_, k) =>
        runFtvClient(
          ["send", small.path, "--as", `c${k}.bin`, ...ftvArgs(port)],
          ctx.timeout(n * small.size),
        )),
    );
    const ms = performance.now() - started;
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const clients = settled.map((s) =>
      (s as PromiseFulfilledResult<ClientRun>).value
    );
    return { ms, clients };
  });
  for (let k = 0; k < n; k++) {
    await checkCopy(`${dir}/c${k}.bin`, small, index === 0, label);
  }
  await discard(dir);
  return {
    ms: value.ms,
    bytes: n * small.size,
    ...usageFields(server, value.clients),
  };
}
