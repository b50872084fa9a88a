/**
 * `deno task bench`: loopback throughput of ftv against the baselines that
 * are installed, in one run, variants alternating.
 *
 * Builds a random file (left in the page cache), then times, each run:
 * ftv `send`, `get` and the seed round trip (`client`) with server and client
 * as separate processes; the same with the sender simulating a 5 % error
 * rate; 16 clients sending at once; `send --compress none` beside the default
 * `auto`; `send` of 100 MiB of real text (the machine's C headers) and of
 * log-like text (how much goes on the wire); `send`
 * of a tree of 10,000 small files against `rsync -r` to the same kind of
 * daemon; and socat + `openssl dgst`, an rsync daemon (default and
 * `--checksum-choice=sha1`) and scp (aes128-gcm) against an sshd the bench
 * starts with its own keys. Every received copy is checked (size each run,
 * SHA-256 once per variant; for the tree, file count, total size and a
 * sample of SHA-256s each run; never timed). Prints MB/s (10^6 bytes/s)
 * medians with min-max, ftv's ratios to each baseline that moves the same
 * thing and the peak RSS of ftv's server and client.
 *
 * `--rss-size 4GiB` is a separate mode: peak RSS of each side while moving
 * one file of that size.
 *
 * Times are wall time from starting the client process to its exit (so they
 * include Deno's ~40 ms start-up; ftv's own `seconds` are shown beside). The
 * round trip counts its bytes twice. ftv's receivers fsync by default and the
 * baselines never do: `--no-fsync` compares like with like. Each received
 * copy is deleted right before the next timed section rather than after its
 * own run (see `discard` in `set_aside.ts`), and the CPU load of other processes is
 * sampled before and after, since either would skew every figure here.
 *
 * Everything listens on 127.0.0.1 only, and every process the bench starts is
 * stopped before it exits, on error and on Ctrl-C too.
 *
 * @module
 */

import { formatBytes } from "../../base/bytes.ts";
import { stopAll } from "../harness.ts";
import { describe, fixed, HOST, MB, remove } from "./common.ts";
import {
  type ClientRun,
  describeFtv,
  ftvArgs,
  prepareFtv,
  receiverFlags,
  runFtvClient,
  startFtvServer,
  type Usage,
} from "./ftv.ts";
import { ftvRows } from "./ftv_rows.ts";
import { fecRows } from "./fec_rows.ts";
import { baselineRows } from "./baselines.ts";
import { httpRows } from "./http_rows.ts";
import { webRows } from "./web_rows.ts";
import { s3Rows } from "./s3_rows.ts";
import { type Options, parseOptions } from "./options.ts";
import { TIME } from "./processes.ts";
import { printReport, ratios, summarise, table } from "./report.ts";
import type { Context, Row } from "./rows.ts";
import { freshDir, makeWorkDir } from "./set_aside.ts";
import {
  checkCopy,
  concatenatedPieces,
  logTextPieces,
  makeSource,
  TEXT_ROOT,
  TEXT_SIZE,
  textFiles,
} from "./sources.ts";
import { cpuBusy, describeBusy } from "./system.ts";
import { makeTree, treeText } from "./tree.ts";

/** Logs progress to stderr, unless the output is JSON. */
type Log = (text: string) => void;

/** Sets up every row that has a set-up; a failing one is skipped. */
async function setupRows(rows: Row[], log: Log): Promise<void> {
  for (const row of rows) {
    if (row.skipped || !row.setup) continue;
    try {
      log(`Setting up ${row.label}...`);
      await row.setup();
    } catch (error) {
      row.skipped = `set-up failed: ${describe(error)}`;
    }
  }
}

/** One untimed warm-up, then `runs` timed runs of every row, alternating. */
async function runRows(rows: Row[], runs: number, log: Log): Promise<void> {
  // The first big transfer after set-up runs far slower than the same one
  // later (the VM hands fresh memory to the page cache), so one run of the
  // first row warms the machine up, untimed.
  const first = rows.find((row) => !row.skipped);
  if (first) {
    log(`Warm-up (untimed): ${first.label}`);
    await first.run(0).catch(() => undefined);
  }
  for (let i = 0; i < runs; i++) {
    // Every other run goes backwards, so no row always follows the same
    // one: what a row leaves behind (page cache, freed memory) skews the next.
    for (const row of i % 2 ? rows.toReversed() : rows) {
      if (row.skipped) continue;
      log(`Run ${i + 1}/${runs}: ${row.label}`);
      try {
        const sample = await row.run(i);
        row.samples.push(sample);
        log(
          `  ${fixed(sample.bytes / MB / (sample.ms / 1000))} MB/s (${
            fixed(sample.ms)
          } ms)`,
        );
      } catch (error) {
        row.skipped = `run ${i + 1} failed: ${describe(error)}`;
        log(`  ${row.skipped}`);
      }
    }
  }
}

/** The report's first lines: what ran where, start-up cost, CPU load. */
async function reportHeader(
  options: Options,
  startup: { ms: number; cpu?: number },
  busyBefore: number | undefined,
  busyAfter: number | undefined,
): Promise<string[]> {
  return [
    `ftv bench: ${
      formatBytes(options.size)
    } file, ${options.runs} run(s) alternating (odd runs in reverse order), ${navigator.hardwareConcurrency} CPUs, deno ${Deno.version.deno}, loopback ${HOST}`,
    `${await describeFtv()}; receivers ${
      options.noFsync ? "run with --no-fsync" : "fsync every copy (default)"
    }`,
    `deno start-up (mod.ts --version): ${fixed(startup.ms)} ms, ${
      startup.cpu === undefined ? "?" : fixed(startup.cpu * 1000)
    } CPU-ms per process (included in every figure); peak RSS via ${
      TIME ? TIME + " -f %M" : "polling /proc"
    }`,
    `CPU busy with the bench idle: before ${describeBusy(busyBefore)}, after ${
      describeBusy(busyAfter)
    }`,
  ];
}

async function bench(options: Options, work: string): Promise<void> {
  const log: Log = (text) => {
    if (!options.json) console.error(text);
  };
  log(`Writing a ${formatBytes(options.size)} random file...`);
  const source = await makeSource(`${work}/source.bin`, options.size);
  const ctx: Context = {
    options,
    work,
    source,
    timeout: (bytes) => Math.max(120_000, bytes / (5 * MB) * 1000),
  };
  await makeOtherLoads(ctx, log);
  const startup = await prepareFtv(options);
  const busyBefore = await cpuBusy();
  const rows = [
    ...await ftvRows(ctx),
    ...fecRows(ctx),
    ...httpRows(ctx),
    ...webRows(ctx),
    ...await s3Rows(ctx),
    ...baselineRows(ctx),
  ];
  await setupRows(rows, log);
  try {
    await runRows(rows, options.runs, log);
  } finally {
    for (const row of rows) {
      await row.teardown?.().catch(() => undefined);
    }
  }
  const summaries = rows.map(summarise);
  const busyAfter = await cpuBusy();
  const header = await reportHeader(options, startup, busyBefore, busyAfter);
  if (!options.json) {
    printReport(header, summaries, options.noFsync);
    return;
  }
  console.log(JSON.stringify(
    {
      size: options.size,
      runs: options.runs,
      cpus: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
      ftv: header[1],
      startupMs: startup.ms,
      startupCpuSeconds: startup.cpu ?? null,
      cpuBusyBefore: busyBefore ?? null,
      cpuBusyAfter: busyAfter ?? null,
      rows: summaries,
      ratios: ratios(summaries, options.noFsync),
    },
    null,
    2,
  ));
}

/** Writes the text file and the tree, for the rows that want them. */
async function makeOtherLoads(ctx: Context, log: Log): Promise<void> {
  const want = (...ids: string[]) => ids.some((id) => ctx.options.only.has(id));
  if (want("send-text")) {
    const files = textFiles(TEXT_ROOT);
    const kind = files.length
      ? `of ${TEXT_ROOT} text`
      : `log text (no text in ${TEXT_ROOT})`;
    log(`Writing a ${formatBytes(TEXT_SIZE)} file ${kind}...`);
    const pieces = files.length
      ? (bytes: number) => concatenatedPieces(files, bytes)
      : logTextPieces;
    ctx.text = {
      ...await makeSource(`${ctx.work}/text.txt`, TEXT_SIZE, pieces),
      kind,
    };
  }
  if (want("send-log")) {
    log(`Writing a ${formatBytes(TEXT_SIZE)} log-like text file...`);
    ctx.log = await makeSource(`${ctx.work}/log.txt`, TEXT_SIZE, logTextPieces);
  }
  if (want("tree", "tree-get", "rsync-tree")) {
    log(`Writing a ${treeText()}...`);
    ctx.tree = await makeTree(`${ctx.work}/tree`);
  }
}

/** One `--rss-size` move: the client's MB/s and each side's peak RSS. */
interface RssResult {
  command: "send" | "get";
  mbps: number;
  serverRssMiB: number | null;
  clientRssMiB: number | null;
}

/** `--rss-size`: one send and one get of a big file, peak RSS of each side. */
async function rssMode(options: Options, work: string): Promise<void> {
  const size = options.rssSize!;
  const log: Log = (text) => {
    if (!options.json) console.error(text);
  };
  log(`Writing a ${formatBytes(size)} random file...`);
  const source = await makeSource(`${work}/source.bin`, size);
  await prepareFtv(options);
  const timeout = Math.max(300_000, size / (5 * MB) * 1000);
  const dir = await freshDir(`${work}/ftv-rss`);
  const out = `${work}/rss-out.bin`;
  const results: RssResult[] = [];
  for (const command of ["send", "get"] as const) {
    log(`ftv ${command} of ${formatBytes(size)}...`);
    const server = await startFtvServer(dir);
    let serverUsage: Usage = {};
    let client: ClientRun;
    try {
      const args = command === "send"
        ? ["send", source.path, "--as", "big.bin"]
        : ["get", "big.bin", "--out", out, ...receiverFlags()];
      client = await runFtvClient([...args, ...ftvArgs(server.port)], timeout);
    } finally {
      serverUsage = await server.stop();
    }
    const copy = command === "send" ? `${dir}/big.bin` : out;
    await checkCopy(copy, source, true, `ftv ${command}`);
    results.push({
      command,
      mbps: size / MB / (client.ms / 1000),
      serverRssMiB: serverUsage.rss === undefined
        ? null
        : serverUsage.rss / 1024,
      clientRssMiB: client.rss === undefined ? null : client.rss / 1024,
    });
  }
  if (options.json) {
    console.log(JSON.stringify({ size, results }, null, 2));
    return;
  }
  await printRss(size, results);
}

async function printRss(size: number, results: RssResult[]): Promise<void> {
  const rows = [["", "MB/s", "server peak RSS", "client peak RSS"]];
  const mib = (value: number | null) =>
    value === null ? "?" : `${fixed(value)} MiB`;
  for (const r of results) {
    rows.push([
      `ftv ${r.command}`,
      fixed(r.mbps),
      mib(r.serverRssMiB),
      mib(r.clientRssMiB),
    ]);
  }
  console.log(
    `ftv peak RSS moving a ${
      formatBytes(size)
    } file (${await describeFtv()})\n` +
      table(rows, ["l", "r", "r", "r"]),
  );
}

async function main(args: string[]): Promise<number> {
  let options: Options | undefined;
  try {
    options = parseOptions(args);
  } catch (error) {
    console.error(`bench: ${describe(error)} (see --help)`);
    return 2;
  }
  if (!options) return 0;
  let work: string;
  try {
    work = await makeWorkDir(options.dir);
  } catch (error) {
    console.error(`bench: cannot make a temporary folder: ${describe(error)}`);
    return 1;
  }
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    console.error("bench: interrupted, stopping everything it started...");
    stopAll().finally(async () => {
      await remove(work).catch(() => undefined);
      Deno.exit(130);
    });
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    if (options.rssSize !== undefined) await rssMode(options, work);
    else await bench(options, work);
    return 0;
  } catch (error) {
    if (!interrupted) console.error(`bench: ${describe(error)}`);
    return 1;
  } finally {
    await stopAll();
    await remove(work).catch(() => undefined);
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
