/**
 * Soak test: many transfers between real `ftv` child processes through ftv's
 * fault proxy, with random bit flips, dropped packets and cut connections,
 * and random SIGKILLs of the client (then the same command again) or of the
 * server (restarted on the same port while the client carries on). Every run
 * must end verified or fail loudly; a wrong file is never acceptable.
 *
 * ```sh
 * deno task soak --runs 50 --seed 7 --size 4194304
 * ```
 *
 * Outcomes: `verified` (exit 0, the final file has the source's SHA-256),
 * `failed loudly` (exit 1 with an `ftv: ` message, the final file absent or
 * correct), `wrong` (a final file with another digest, or exit 0 without the
 * right file), `unclear` (a non-zero exit without a message, a stack trace,
 * or a child that outlived its deadline). Exit code 1 unless `wrong` and
 * `unclear` are both 0.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { writeRandomFile } from "../demo.ts";
import { hashFile } from "../engine/digest.ts";
import { Logger } from "../base/log.ts";
import { exists } from "../base/paths.ts";
import { PART_SUFFIX, STATE_SUFFIX } from "../protocol/names.ts";
import { type FaultProxyOptions, startProxy } from "../faults/proxy.ts";
import { Rng } from "../faults/rng.ts";
import {
  freePort,
  ftvCommand,
  type FtvService,
  type RunningProcess,
  runProcess,
  type RunResult as ChildResult,
  startFtv,
} from "./harness.ts";

/** Chunk size of the soak server: several chunks per file, faults stay local. */
const CHUNK_SIZE = 256 * 1024;
/** Longest one client child may run before it counts as hung. */
const CHILD_DEADLINE_MS = 90_000;
/** Lines of the server's log kept for a report. */
const LOG_LINES = 40;

type Outcome = "verified" | "failed loudly" | "wrong" | "unclear";

interface Plan {
  op: "send" | "get";
  size: number;
  proxy: Omit<FaultProxyOptions, "targetHost" | "targetPort">;
  kill: "none" | "client" | "server";
  /** When to kill, as a fraction of the expected transfer time. */
  killAt: number;
  rate: number;
  /** The client's `--max-retries`. */
  maxRetries: number;
}

interface RunResult {
  outcome: Outcome;
  detail: string;
  /** Whether a planned kill landed while the client was still running. */
  killed: boolean;
  connections?: number;
}

/** Starts `ftv <args>` as a client child, killed if it outlives its deadline. */
function startClient(args: string[]): RunningProcess {
  const command = ftvCommand(args);
  return runProcess(command.program, command.args, {
    timeoutMs: CHILD_DEADLINE_MS,
  });
}

/** The last `count` lines of `text`. */
function lastLines(text: string, count: number): string {
  return text.split("\n").slice(-count).join("\n");
}

/** The `ftv server` child, on a fixed port so it can be killed and restarted. */
class Server {
  readonly port: number;
  readonly dir: string;
  #service: FtvService | undefined;
  /** What servers stopped before this one logged. */
  #history = "";

  constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  /** The last lines the server logged, across restarts. */
  get tail(): string {
    return lastLines(this.#history + (this.#service?.log() ?? ""), LOG_LINES);
  }

  async start(): Promise<void> {
    this.#service = await startFtv([
      "server",
      "--host",
      "127.0.0.1",
      "--port",
      String(this.port),
      "--dir",
      this.dir,
      "--chunk-size",
      String(CHUNK_SIZE),
      "--no-fsync",
    ], { logLines: LOG_LINES });
  }

  /** SIGKILL (a crash), or a clean stop (SIGTERM); waits for the exit. */
  async stop(signal: "SIGKILL" | "SIGTERM"): Promise<void> {
    const service = this.#service;
    if (!service) return;
    this.#service = undefined;
    if (signal === "SIGKILL") service.kill(signal);
    else await service.stop();
    await service.exited;
    this.#history = lastLines(this.#history + service.log(), LOG_LINES);
  }
}

function usage(): never {
  console.error(
    "Usage: deno task soak [--runs N] [--seed N] [--size BYTES] [--verbose]",
  );
  Deno.exit(2);
}

function wholeNumber(raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) usage();
  return Number(raw);
}

/** A run's faults, kill and size, drawn from `rng`. */
function planRun(rng: Rng, size: number): Plan {
  const edges = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1];
  const fileSize = rng.chance(0.1)
    ? edges[rng.int(edges.length)]!
    : 1 + rng.int(2 * size);
  const flip = () => 10 ** (-5 + 2.5 * rng.next());
  const drop = () => 10 ** (-5 + 2 * rng.next());
  const cut = () => Math.floor(CHUNK_SIZE * (1.5 + 6 * rng.next()));
  const proxy: Plan["proxy"] = { seed: rng.int(2 ** 32) };
  const fault = rng.next();
  if (fault < 0.15) {
    // A clean link: only kills, if any.
  } else if (fault < 0.45) {
    proxy.flipRate = flip();
  } else if (fault < 0.65) {
    proxy.dropRate = drop();
  } else if (fault < 0.85) {
    proxy.cutAfterBytes = cut();
  } else if (fault < 0.95) {
    proxy.flipRate = flip();
    proxy.dropRate = drop();
    proxy.cutAfterBytes = cut();
  } else {
    // Harsh: most chunks damaged and one repair round, so many runs must fail.
    proxy.flipRate = 10 ** (-2.5 + rng.next());
  }
  const harsh = fault >= 0.95;
  const kill = rng.next();
  return {
    op: rng.chance(0.5) ? "send" : "get",
    size: fileSize,
    proxy,
    kill: kill < 0.5 ? "none" : kill < 0.75 ? "client" : "server",
    killAt: rng.next(),
    rate: (4 + rng.int(13)) * 1024 * 1024,
    maxRetries: harsh ? 1 : 6,
  };
}

function describePlan(plan: Plan): string {
  const faults = [
    plan.proxy.flipRate ? `flip ${plan.proxy.flipRate.toExponential(1)}` : "",
    plan.proxy.dropRate ? `drop ${plan.proxy.dropRate.toExponential(1)}` : "",
    plan.proxy.cutAfterBytes ? `cut ${plan.proxy.cutAfterBytes}` : "",
  ].filter((f) => f !== "").join(" ") || "clean";
  const kill = plan.kill === "none"
    ? ""
    : `, kill ${plan.kill} at ${Math.round(plan.killAt * 100)}%`;
  const retries = plan.maxRetries === 1 ? ", 1 retry" : "";
  return `${plan.op} ${plan.size} B, ${faults}${retries}${kill}`;
}

async function removeAll(paths: string[]): Promise<void> {
  for (const path of paths) {
    await Deno.remove(path).catch(() => undefined);
  }
}

/** Waits `ms`, or less if `client` exits first. */
async function untilOrExit(
  client: RunningProcess,
  ms: number,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    client.result,
    new Promise((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}

/** Judges a finished run by its last client's result and the final file. */
async function judge(
  result: ChildResult,
  final: string,
  expected: string,
): Promise<{ outcome: Outcome; detail: string }> {
  const actual = (await exists(final)) ? await hashFile(final) : undefined;
  if (result.timedOut) return { outcome: "unclear", detail: "client hung" };
  if (actual !== undefined && actual !== expected) {
    return {
      outcome: "wrong",
      detail: `${final} has ${actual} (exit ${result.code})`,
    };
  }
  if (result.code === 0) {
    let reported: string | undefined;
    try {
      reported = JSON.parse(result.stdout).sha256;
    } catch {
      // Falls through: reported stays undefined.
    }
    if (actual === expected && reported === expected) {
      return { outcome: "verified", detail: "" };
    }
    return {
      outcome: "wrong",
      detail: `exit 0 but final file ${actual ?? "absent"}, reported ${
        reported ?? "nothing"
      }`,
    };
  }
  const message = result.stderr.split("\n").find((line) =>
    line.startsWith("ftv: ")
  );
  if (result.code === 1 && message && !result.stderr.includes("    at ")) {
    return { outcome: "failed loudly", detail: message };
  }
  return {
    outcome: "unclear",
    detail: `exit ${result.code} without a clear message:\n${
      result.stderr.slice(-2000)
    }`,
  };
}

/** A client's flags: through the proxy on `port`, short timeouts, JSON. */
function clientFlags(plan: Plan, port: number): string[] {
  return [
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--timeout",
    "2",
    "--max-retries",
    String(plan.maxRetries),
    "--retry-delay",
    "0.1",
    "--limit-rate",
    String(plan.rate),
    "--json",
  ];
}

/** One transfer with its faults and kills; resolves to its outcome. */
async function soakRun(
  plan: Plan,
  run: number,
  server: Server,
  work: string,
): Promise<RunResult> {
  const name = `run-${run}.bin`;
  const source = `${work}/${name}`;
  const stored = `${server.dir}/${name}`;
  const out = `${work}/out-${name}`;
  await writeRandomFile(source, plan.size);
  const expected = await hashFile(source);
  if (plan.op === "get") await Deno.copyFile(source, stored);
  await using proxy = await startProxy({
    ...plan.proxy,
    targetHost: "127.0.0.1",
    targetPort: server.port,
    log: new Logger("FaultProxy", { level: "ERROR" }),
  });
  const args = [
    ...(plan.op === "send"
      ? ["send", source, "--as", name]
      : ["get", name, "--out", out]),
    ...clientFlags(plan, proxy.addr.port),
  ];
  const killAfterMs = 100 + plan.killAt * plan.size / plan.rate * 1000;
  try {
    let client = startClient(args);
    let killed = false;
    if (plan.kill === "client") {
      await untilOrExit(client, killAfterMs);
      killed = !client.done;
      client.kill("SIGKILL");
      await client.result;
      client = startClient(args);
    } else if (plan.kill === "server") {
      await untilOrExit(client, killAfterMs);
      killed = !client.done;
      await server.stop("SIGKILL");
      await server.start();
    }
    const result = await client.result;
    const verdict = await judge(
      result,
      plan.op === "send" ? stored : out,
      expected,
    );
    let connections: number | undefined;
    try {
      connections = JSON.parse(result.stdout).connections;
    } catch {
      // Not a success: no JSON.
    }
    return { ...verdict, killed, ...(connections ? { connections } : {}) };
  } finally {
    await removeAll([
      source,
      out,
      out + PART_SUFFIX,
      out + STATE_SUFFIX,
      stored,
      stored + PART_SUFFIX,
      stored + STATE_SUFFIX,
    ]);
  }
}

/** What the command line asked for. */
interface SoakArgs {
  runs: number;
  seed: number;
  size: number;
  verbose: boolean;
}

function parseSoakArgs(args: string[]): SoakArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        runs: { type: "string" },
        seed: { type: "string" },
        size: { type: "string" },
        verbose: { type: "boolean" },
      },
      strict: true,
    });
  } catch {
    usage();
  }
  const { values } = parsed;
  return {
    runs: wholeNumber(values.runs, 200),
    seed: wholeNumber(
      values.seed,
      crypto.getRandomValues(new Uint32Array(1))[0]!,
    ),
    size: wholeNumber(values.size, 4 * 1024 * 1024),
    verbose: values.verbose ?? false,
  };
}

/** Outcomes, kills that landed and reconnections, over all runs so far. */
class Tally {
  readonly counts: Record<Outcome, number> = {
    "verified": 0,
    "failed loudly": 0,
    "wrong": 0,
    "unclear": 0,
  };
  readonly kills = { client: 0, server: 0 };
  reconnected = 0;

  /** Counts one run. */
  add(plan: Plan, result: RunResult): void {
    this.counts[result.outcome]++;
    if (result.killed) this.kills[plan.kill as "client" | "server"]++;
    if (result.connections && result.connections > 1) this.reconnected++;
  }

  /** Whether no run was `wrong` or `unclear`. */
  get passed(): boolean {
    return this.counts.wrong === 0 && this.counts.unclear === 0;
  }

  /** The closing lines. */
  summary(args: SoakArgs, seconds: string): string[] {
    const { counts, kills } = this;
    return [
      `soak: ${args.runs} runs, seed ${args.seed}: verified ${counts.verified}, failed loudly ${
        counts["failed loudly"]
      }, wrong ${counts.wrong}, unclear ${counts.unclear} (${seconds} s)`,
      `soak: SIGKILLs mid-transfer: client ${kills.client}, server ${kills.server}; verified runs that reconnected: ${this.reconnected}`,
    ];
  }
}

/** Plans run number `run`, runs it, counts it and prints its line when due. */
async function soakOne(
  run: number,
  context: { rng: Rng; args: SoakArgs; server: Server; work: string },
  tally: Tally,
): Promise<void> {
  const { args, server } = context;
  const plan = planRun(context.rng, args.size);
  const t0 = performance.now();
  const result = await soakRun(plan, run, server, context.work);
  const { outcome, detail, killed, connections } = result;
  tally.add(plan, result);
  const seconds = ((performance.now() - t0) / 1000).toFixed(1);
  const note = outcome === "verified"
    ? connections && connections > 1 ? ` (${connections} connections)` : ""
    : `: ${detail}`;
  if (args.verbose || outcome !== "verified" || run % 10 === 0) {
    console.log(
      `#${run} ${describePlan(plan)} -> ${outcome}${note}${
        killed ? "" : plan.kill === "none" ? "" : " (kill came too late)"
      } [${seconds} s]`,
    );
  }
  if (outcome === "wrong" || outcome === "unclear") {
    console.log(`  server log tail:\n${server.tail}`);
  }
}

async function main(): Promise<number> {
  const args = parseSoakArgs(Deno.args);
  const rng = new Rng(args.seed);
  const work = await Deno.makeTempDir({ prefix: "ftv-soak-" });
  const server = new Server(freePort(), `${work}/srv`);
  const tally = new Tally();
  const started = performance.now();
  console.log(
    `soak: ${args.runs} runs, seed ${args.seed}, sizes up to ${
      2 * args.size
    } bytes, server port ${server.port}`,
  );
  try {
    await server.start();
    for (let run = 1; run <= args.runs; run++) {
      await soakOne(run, { rng, args, server, work }, tally);
    }
  } finally {
    await server.stop("SIGTERM");
    await Deno.remove(work, { recursive: true });
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  for (const line of tally.summary(args, seconds)) console.log(line);
  return tally.passed ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main());
}
