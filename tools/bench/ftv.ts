/**
 * ftv under the bench: a server started for a row and stopped after it, a
 * client command run to its end, each with the peak RSS and CPU seconds it
 * used (from `/usr/bin/time`, or by polling /proc).
 *
 * @module
 */

import {
  ftvCommand,
  type FtvService,
  MOD_PATH,
  SERVER_READY,
  StartError,
  startFtv,
} from "../harness.ts";
import { BenchError, HOST, lastLine, remove, sleep } from "./common.ts";
import type { Options } from "./options.ts";
import {
  findTool,
  type Finished,
  runCommand,
  SETSID,
  TIME,
} from "./processes.ts";
import { workDir } from "./set_aside.ts";
import { denoPid, vmHwm } from "./system.ts";

/** The checkout the bench measures. */
const ROOT = MOD_PATH.slice(0, MOD_PATH.lastIndexOf("/"));

/** Flags for ftv's receiving side (server, `get`, `client`): `--no-fsync` or none. */
let receivers: string[] = [];

/** Flags for ftv's receiving side: `--no-fsync` once asked for and checked. */
export function receiverFlags(): string[] {
  return receivers;
}

/** What a process used: peak RSS (KiB) and CPU seconds (user + system). */
export interface Usage {
  rss?: number;
  cpu?: number;
}

const USAGE_FORMAT = "%M %U %S";
let usageFiles = 0;

/** `/usr/bin/time` writing what the process used to a new file, and the file. */
function timePrefix(): { prefix: string[]; file: string } {
  const file = `${workDir()}/usage-${usageFiles++}.txt`;
  return { prefix: [TIME!, "-f", USAGE_FORMAT, "-o", file], file };
}

/** Reads what `/usr/bin/time -f "%M %U %S" -o FILE` wrote, then deletes it. */
async function readUsage(path: string): Promise<Usage> {
  try {
    const last = (await Deno.readTextFile(path)).trim().split("\n").at(-1);
    await remove(path);
    const [rss, user, sys] = (last ?? "").trim().split(/\s+/).map(Number);
    const usage: Usage = {};
    if (Number.isFinite(rss)) usage.rss = rss!;
    if (Number.isFinite(user) && Number.isFinite(sys)) usage.cpu = user! + sys!;
    return usage;
  } catch {
    return {};
  }
}

/** An `ftv server` the bench started. */
export interface FtvServerProcess {
  port: number;
  /** The HTTP port, when started with `--http`. */
  httpPort: number | undefined;
  /**
   * Reads the peak RSS from /proc, stops the server (SIGTERM) and resolves
   * to what it used.
   */
  stop(): Promise<Usage>;
}

/**
 * Starts `ftv server` on a free port. It announces its port at INFO level
 * ("Server started on 127.0.0.1:PORT"), so it runs without `--quiet`; stderr
 * is drained for as long as it runs.
 */
export async function startFtvServer(
  dir: string,
  extra: string[] = [],
  permissions?: readonly string[],
): Promise<FtvServerProcess> {
  const timed = TIME ? timePrefix() : undefined;
  let server: FtvService;
  try {
    server = await startFtv(
      ["server", "--host", HOST, "--port", "0", "--dir", dir]
        .concat(receivers, extra),
      {
        prefix: [...(SETSID ? [SETSID] : []), ...(timed?.prefix ?? [])],
        group: !!SETSID,
        ready: SERVER_READY,
        ...(permissions ? { permissions } : {}),
        startTimeoutMs: 30_000,
        logLines: 20,
      },
    );
  } catch (error) {
    if (!(error instanceof StartError)) {
      throw new BenchError(`cannot start ftv server: ${error}`);
    }
    throw new BenchError(
      `ftv server ${error.timedOut ? "did not start in 30 s" : "exited"}: ${
        lastLine(error.log)
      }`,
    );
  }
  const pid = await denoPid(server.pid);
  const http = /Serving HTTPS? on \S+:(\d+)/.exec(server.log())?.[1];
  return {
    port: server.port,
    httpPort: http === undefined ? undefined : Number(http),
    async stop() {
      const rss = await vmHwm(pid);
      // SIGTERM to deno alone, so /usr/bin/time outlives it and reports.
      await server.stop({ termPid: pid, graceMs: 5000 });
      const usage = timed ? await readUsage(timed.file) : {};
      return { ...usage, ...(rss === undefined ? {} : { rss }) };
    },
  };
}

/** What one ftv client command did. */
export interface ClientRun {
  ms: number;
  /** Peak RSS (KiB), from /usr/bin/time or by polling /proc. */
  rss: number | undefined;
  /** CPU seconds, user + system (only with /usr/bin/time). */
  cpu: number | undefined;
  /** What `--json` printed. */
  result: {
    sha256?: string;
    seconds?: number;
    attempts?: number;
    retransmittedChunks?: number;
    bytes?: number;
    wireBytes?: number;
  };
}

/** Polls a process's peak RSS from /proc while it runs (may miss a late peak). */
function pollPeak(peak: { kib: number }) {
  return (pid: number) => {
    let polling = true;
    const poller = (async () => {
      while (polling) {
        peak.kib = Math.max(peak.kib, await vmHwm(pid) ?? 0);
        await sleep(100);
      }
    })();
    return async () => {
      polling = false;
      await poller;
    };
  };
}

/** Runs one ftv client command to completion, timed, with its peak RSS. */
export async function runFtvClient(
  args: string[],
  timeoutMs: number,
): Promise<ClientRun> {
  const command = ftvCommand(args);
  const run = await runClient(command.program, command.args, timeoutMs);
  if (run.finished.code !== 0) {
    throw new BenchError(
      `ftv ${args[0]} failed (exit ${run.finished.code}): ${
        lastLine(run.finished.stderr)
      }`,
    );
  }
  let result: ClientRun["result"] = {};
  try {
    result = JSON.parse(lastLine(run.finished.stdout));
  } catch {
    // --json output missing: the timing still counts.
  }
  return { ms: run.finished.ms, rss: run.rss, cpu: run.cpu, result };
}

/**
 * Runs any client program to completion, timed, with its peak RSS and CPU
 * seconds (from /usr/bin/time, or its RSS by polling /proc).
 */
export async function runClient(
  program: string,
  args: string[],
  timeoutMs: number,
): Promise<{ finished: Finished; rss?: number; cpu?: number }> {
  if (TIME) {
    const timed = timePrefix();
    const finished = await runCommand(
      timed.prefix[0]!,
      [...timed.prefix.slice(1), program, ...args],
      timeoutMs,
    );
    return { finished, ...(await readUsage(timed.file)) };
  }
  const peak = { kib: 0 };
  const finished = await runCommand(
    program,
    args,
    timeoutMs,
    undefined,
    pollPeak(peak),
  );
  return { finished, ...(peak.kib ? { rss: peak.kib } : {}) };
}

/** A client's flags to reach the server on `port`, quiet, printing JSON. */
export function ftvArgs(port: number): string[] {
  return ["--host", HOST, "--port", String(port), "--quiet", "--json"];
}

/** Runs `ftv <args>` to its end (no timing of its own). */
export function runFtv(args: string[], timeoutMs: number): Promise<Finished> {
  const command = ftvCommand(args);
  return runCommand(command.program, command.args, timeoutMs);
}

/** What `ftv <command> --help` prints. */
export async function ftvHelp(command: string): Promise<string> {
  const out = await runFtv([command, "--help"], 60_000);
  return out.stdout + out.stderr;
}

/** `ftv 1a2b3c4 + 2 uncommitted file(s) at /path`, from git. */
export async function describeFtv(): Promise<string> {
  const git = findTool("git");
  if (!git) return "ftv (no git)";
  const head = await runCommand(git, [
    "-C",
    ROOT,
    "rev-parse",
    "--short",
    "HEAD",
  ], 10_000)
    .catch(() => undefined);
  const status = await runCommand(
    git,
    ["-C", ROOT, "status", "--porcelain"],
    10_000,
  )
    .catch(() => undefined);
  if (!head || head.code !== 0) return `ftv at ${ROOT}`;
  const changed = status?.stdout.split("\n").filter(Boolean).length ?? 0;
  return `ftv ${head.stdout.trim()}${
    changed ? ` + ${changed} uncommitted file(s)` : ""
  } at ${ROOT}`;
}

/**
 * Warms Deno's module cache (so no timed run compiles ftv), checks that
 * `--no-fsync` exists when asked for, and times one process start-up.
 */
export async function prepareFtv(
  options: Options,
): Promise<{ ms: number; cpu?: number }> {
  const warm = await runFtv(["--version"], 120_000);
  if (warm.code !== 0) {
    throw new BenchError(`cannot run ${MOD_PATH}: ${lastLine(warm.stderr)}`);
  }
  if (options.noFsync) {
    if (!(await ftvHelp("server")).includes("--no-fsync")) {
      throw new BenchError("--no-fsync: this ftv has no --no-fsync option");
    }
    receivers = ["--no-fsync"];
  }
  if (!TIME) return await runFtv(["--version"], 60_000);
  const timed = timePrefix();
  const command = ftvCommand(["--version"], { prefix: timed.prefix });
  const run = await runCommand(command.program, command.args, 60_000);
  const { cpu } = await readUsage(timed.file);
  return { ms: run.ms, ...(cpu === undefined ? {} : { cpu }) };
}
