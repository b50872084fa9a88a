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
import { PART_SUFFIX, STATE_SUFFIX } from "../protocol/names.ts";
import { type FaultProxyOptions, startProxy } from "../faults/proxy.ts";
import { Rng } from "../faults/rng.ts";

const MOD_PATH = new URL("../mod.ts", import.meta.url).pathname;
const CHILD_ARGS = [
  "run",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  MOD_PATH,
];
/** Chunk size of the soak server: several chunks per file, faults stay local. */
const CHUNK_SIZE = 256 * 1024;
/** Longest one client child may run before it counts as hung. */
const CHILD_DEADLINE_MS = 90_000;
/** Longest a server child may take to log its port. */
const START_TIMEOUT_MS = 15_000;

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

interface ChildResult {
  code: number;
  stdout: string;
  stderr: string;
  hung: boolean;
}

/** A client child running in the background. */
class Client {
  readonly #child: Deno.ChildProcess;
  readonly result: Promise<ChildResult>;
  #done = false;

  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [...CHILD_ARGS, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      this.kill();
    }, CHILD_DEADLINE_MS);
    this.result = this.#child.output().then((output) => {
      clearTimeout(timer);
      this.#done = true;
      const decoder = new TextDecoder();
      return {
        code: output.code,
        stdout: decoder.decode(output.stdout),
        stderr: decoder.decode(output.stderr),
        hung,
      };
    });
  }

  get done(): boolean {
    return this.#done;
  }

  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }
}

/** The `ftv server` child, on a fixed port so it can be killed and restarted. */
class Server {
  readonly port: number;
  readonly dir: string;
  #child: Deno.ChildProcess | undefined;
  #drained: Promise<void> = Promise.resolve();
  #tail: string[] = [];

  constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  /** The last lines the server logged. */
  get tail(): string {
    return this.#tail.join("\n");
  }

  async start(): Promise<void> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...CHILD_ARGS,
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
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const started = Promise.withResolvers<void>();
    const timer = setTimeout(() => {
      started.reject(new Error(`Cannot start server:\n${this.tail}`));
      child.kill("SIGKILL");
    }, START_TIMEOUT_MS);
    this.#drained = (async () => {
      let pending = "";
      for await (
        const text of child.stderr.pipeThrough(new TextDecoderStream())
      ) {
        pending += text;
        const lines = pending.split("\n");
        pending = lines.pop()!;
        for (const line of lines) {
          this.#tail.push(line);
          if (/Server started on /.test(line)) started.resolve();
        }
        this.#tail.splice(0, Math.max(0, this.#tail.length - 40));
      }
      started.reject(new Error(`Server exited at start:\n${this.tail}`));
    })();
    try {
      await started.promise;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` and waits for the exit. */
  async stop(signal: Deno.Signal): Promise<void> {
    const child = this.#child;
    if (!child) return;
    this.#child = undefined;
    try {
      child.kill(signal);
    } catch {
      // Already exited.
    }
    await child.status;
    await this.#drained;
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

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
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

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function removeAll(paths: string[]): Promise<void> {
  for (const path of paths) {
    await Deno.remove(path).catch(() => undefined);
  }
}

/** Waits `ms`, or less if `client` exits first. */
async function untilOrExit(client: Client, ms: number): Promise<void> {
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
  if (result.hung) return { outcome: "unclear", detail: "client hung" };
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
    "--host",
    "127.0.0.1",
    "--port",
    String(proxy.addr.port),
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
  const killAfterMs = 100 + plan.killAt * plan.size / plan.rate * 1000;
  try {
    let client = new Client(args);
    let killed = false;
    if (plan.kill === "client") {
      await untilOrExit(client, killAfterMs);
      killed = !client.done;
      client.kill();
      await client.result;
      client = new Client(args);
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

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: Deno.args,
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
  const runs = wholeNumber(values.runs, 200);
  const seed = wholeNumber(
    values.seed,
    crypto.getRandomValues(new Uint32Array(1))[0]!,
  );
  const size = wholeNumber(values.size, 4 * 1024 * 1024);
  const rng = new Rng(seed);
  const work = await Deno.makeTempDir({ prefix: "ftv-soak-" });
  const server = new Server(freePort(), `${work}/srv`);
  const counts: Record<Outcome, number> = {
    "verified": 0,
    "failed loudly": 0,
    "wrong": 0,
    "unclear": 0,
  };
  const kills = { client: 0, server: 0 };
  let reconnected = 0;
  const started = performance.now();
  console.log(
    `soak: ${runs} runs, seed ${seed}, sizes up to ${
      2 * size
    } bytes, server port ${server.port}`,
  );
  try {
    await server.start();
    for (let run = 1; run <= runs; run++) {
      const plan = planRun(rng, size);
      const t0 = performance.now();
      const { outcome, detail, killed, connections } = await soakRun(
        plan,
        run,
        server,
        work,
      );
      counts[outcome]++;
      if (killed) kills[plan.kill as "client" | "server"]++;
      if (connections && connections > 1) reconnected++;
      const seconds = ((performance.now() - t0) / 1000).toFixed(1);
      const note = outcome === "verified"
        ? connections && connections > 1 ? ` (${connections} connections)` : ""
        : `: ${detail}`;
      if (values.verbose || outcome !== "verified" || run % 10 === 0) {
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
  } finally {
    await server.stop("SIGTERM");
    await Deno.remove(work, { recursive: true });
  }
  const seconds = ((performance.now() - started) / 1000).toFixed(0);
  console.log(
    `soak: ${runs} runs, seed ${seed}: verified ${counts.verified}, failed loudly ${
      counts["failed loudly"]
    }, wrong ${counts.wrong}, unclear ${counts.unclear} (${seconds} s)`,
  );
  console.log(
    `soak: SIGKILLs mid-transfer: client ${kills.client}, server ${kills.server}; verified runs that reconnected: ${reconnected}`,
  );
  return counts.wrong === 0 && counts.unclear === 0 ? 0 : 1;
}

if (import.meta.main) {
  Deno.exit(await main());
}
