/**
 * The one place the tools and the tests start child processes: `ftv` itself
 * (`deno run mod.ts ...` with the permissions a user would grant), a
 * long-running `ftv` whose port is read from its ready line ("Server
 * started on HOST:PORT", "Proxy listening on HOST:PORT -> ..."), and any
 * other program (socat, rsync, `script`). Every child is stopped by its PID
 * the same way: SIGTERM, then SIGKILL after a grace period.
 *
 * @example
 * ```ts
 * import { startFtv } from "./harness.ts";
 * await using server = await startFtv(["server", "--port", "0", "--dir", "/tmp/x"]);
 * console.log(`listening on ${server.port}`);
 * ```
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** Absolute path of the CLI entry point. */
export const MOD_PATH: string = fileURLToPath(
  new URL("../mod.ts", import.meta.url),
);

/** How every `ftv` child runs: the permissions a user would grant. */
export const DENO_RUN_ARGS: readonly string[] = [
  "run",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  MOD_PATH,
];

/**
 * The `deno` arguments that run `ftv` with `permissions` instead of the
 * defaults in {@linkcode DENO_RUN_ARGS}, to check what a narrower grant allows.
 */
export function denoArgs(permissions?: readonly string[]): string[] {
  return permissions === undefined
    ? [...DENO_RUN_ARGS]
    : ["run", "--no-prompt", ...permissions, MOD_PATH];
}

/** Options for {@linkcode ftvCommand}. */
export interface FtvCommandOptions {
  /** `deno run` permission flags instead of {@linkcode DENO_RUN_ARGS}'s. */
  permissions?: readonly string[];
  /**
   * Words run in front of `deno`, e.g. `["setsid", "/usr/bin/time", "-o",
   * FILE]`. @default none
   */
  prefix?: readonly string[];
}

/** The program and arguments that run `ftv <args>`. */
export function ftvCommand(
  args: readonly string[],
  options: FtvCommandOptions = {},
): { program: string; args: string[] } {
  const words = [
    ...(options.prefix ?? []),
    Deno.execPath(),
    ...denoArgs(options.permissions),
    ...args,
  ];
  return { program: words[0]!, args: words.slice(1) };
}

/** The server's ready line; the group is its port. */
export const SERVER_READY = /Server started on \S+:(\d+)\n/;

/** The fault proxy's ready line; the group is its port. */
export const PROXY_READY = /Proxy listening on \S+:(\d+) /;

/** Longest a one-off child may run before it is stopped. */
const RUN_TIMEOUT_MS = 30_000;
/** Longest a service child may take to print its ready line. */
const START_TIMEOUT_MS = 15_000;
/** Longest a stopped child may take to exit after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 10_000;
/** Bound on stream reads in any one loop here. */
const MAX_READS = 1_000_000;

/** A port on `hostname` that nobody listens on (bound, noted, closed). */
export function freePort(hostname = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** True when `promise` settles within `ms`. */
export async function within(
  promise: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- any child

/** Options for {@linkcode spawnProcess}. */
export interface SpawnProcessOptions {
  /** Working folder of the child. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** @default "null" */
  stdout?: "piped" | "null";
  /** @default "null" */
  stderr?: "piped" | "null";
  /**
   * The child leads its own process group (`program` is `setsid`, which
   * execs in place), so signals go to the whole group: a pipeline or a
   * wrapper's child stops too. @default false
   */
  group?: boolean;
}

/** Options for {@linkcode ChildHandle.stop}. */
export interface StopOptions {
  /** How long SIGTERM has before SIGKILL. @default 10000 */
  graceMs?: number;
  /**
   * Where the SIGTERM goes: a process inside the child's group, so that a
   * wrapper around it (`/usr/bin/time`) outlives it and reports.
   * @default the child (its whole group with `group`)
   */
  termPid?: number;
}

/** A child process started by {@linkcode spawnProcess}. */
export interface ChildHandle {
  /** The child, for its piped streams. */
  readonly process: Deno.ChildProcess;
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  /** Whether the child has not exited yet. */
  readonly running: boolean;
  /** Sends `signal` to the child (its group with `group`); gone is no error. */
  signal(signal: Deno.Signal): void;
  /**
   * SIGTERM, then SIGKILL after the grace period; resolves once it has
   * exited. With `group`, whatever is left of the group gets SIGKILL too.
   */
  stop(options?: StopOptions): Promise<Deno.CommandStatus>;
}

/** Children started here that have not exited yet. */
const live = new Set<ChildHandle>();

function sendSignal(pid: number, signal: Deno.Signal): boolean {
  try {
    Deno.kill(pid, signal);
    return true;
  } catch {
    return false; // already gone
  }
}

/** Starts `program` with `stdin` closed; see {@linkcode stopAll}. */
export function spawnProcess(
  program: string,
  args: readonly string[],
  options: SpawnProcessOptions = {},
): ChildHandle {
  const child = new Deno.Command(program, {
    args: [...args],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
    stdin: "null",
    stdout: options.stdout ?? "null",
    stderr: options.stderr ?? "null",
  }).spawn();
  const group = options.group ?? false;
  let running = true;
  const signal = (name: Deno.Signal) => {
    if (group && sendSignal(-child.pid, name)) return;
    if (!running) return; // its pid may belong to another process by now
    try {
      child.kill(name);
    } catch {
      // Already exited.
    }
  };
  const handle: ChildHandle = {
    process: child,
    pid: child.pid,
    status: child.status,
    get running() {
      return running;
    },
    signal,
    async stop({ graceMs = STOP_GRACE_MS, termPid } = {}) {
      if (running) {
        if (termPid === undefined) signal("SIGTERM");
        else sendSignal(termPid, "SIGTERM");
        if (!(await within(child.status, graceMs))) signal("SIGKILL");
      }
      const status = await child.status;
      if (group) sendSignal(-child.pid, "SIGKILL"); // stragglers in its group
      return status;
    },
  };
  live.add(handle);
  child.status.finally(() => {
    running = false;
    live.delete(handle);
  }).catch(() => undefined);
  return handle;
}

/** Stops every child started here that is still running (e.g. on Ctrl-C). */
export async function stopAll(graceMs = 1000): Promise<void> {
  await Promise.all([...live].map((handle) => handle.stop({ graceMs })));
}

/** Options for {@linkcode runProcess}. */
export interface RunProcessOptions {
  /** Working folder of the child. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** See {@linkcode SpawnProcessOptions.group}. @default false */
  group?: boolean;
  /** Stop the child after this long. @default 30000 */
  timeoutMs?: number;
  /**
   * Once timed out, how long SIGTERM has before SIGKILL; 0 sends SIGKILL at
   * once. @default 0
   */
  timeoutGraceMs?: number;
}

/** What a finished child printed. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
  /** Whether it was stopped for running past its timeout. */
  timedOut: boolean;
}

/** A child run to its end by {@linkcode runProcess}. */
export interface RunningProcess extends AsyncDisposable {
  readonly pid: number;
  /** Whether the child has exited and its output is read. */
  readonly done: boolean;
  /** Sends `signal` (e.g. SIGKILL) without waiting. */
  kill(signal: Deno.Signal): void;
  /** Resolves when the child has exited, with what it printed. */
  readonly result: Promise<RunResult>;
}

/**
 * Starts `program` with piped output and collects it; stops it after
 * `timeoutMs`. On dispose a child still running gets SIGKILL.
 */
export function runProcess(
  program: string,
  args: readonly string[],
  options: RunProcessOptions = {},
): RunningProcess {
  const started = performance.now();
  const handle = spawnProcess(program, args, {
    ...options,
    stdout: "piped",
    stderr: "piped",
  });
  const graceMs = options.timeoutGraceMs ?? 0;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    if (graceMs > 0) handle.stop({ graceMs });
    else handle.signal("SIGKILL");
  }, options.timeoutMs ?? RUN_TIMEOUT_MS);
  let done = false;
  const result = (async () => {
    try {
      const [status, stdout, stderr] = await Promise.all([
        handle.status,
        new Response(handle.process.stdout).text(),
        new Response(handle.process.stderr).text(),
      ]);
      const ms = performance.now() - started;
      return { code: status.code, stdout, stderr, ms, timedOut };
    } finally {
      done = true;
      clearTimeout(timer);
    }
  })();
  return {
    pid: handle.pid,
    get done() {
      return done;
    },
    kill: handle.signal,
    result,
    async [Symbol.asyncDispose]() {
      if (!done) handle.signal("SIGKILL");
      await result.catch(() => undefined);
    },
  };
}

// ---------------------------------------------------------------- services

/** Options for {@linkcode startFtv}. */
export interface StartFtvOptions extends FtvCommandOptions {
  /**
   * The log line (matched against all of stderr so far) that says the child
   * is ready; its first group is the port. @default SERVER_READY
   */
  ready?: RegExp;
  /** See {@linkcode SpawnProcessOptions.group}. @default false */
  group?: boolean;
  /** Longest wait for the ready line. @default 15000 */
  startTimeoutMs?: number;
  /** How long SIGTERM has before SIGKILL in `stop()`. @default 10000 */
  stopGraceMs?: number;
  /**
   * Once ready, keep only this many last lines of the log, so a
   * long-running child's log stays small. @default all of it
   */
  logLines?: number;
}

/** A long-running `ftv` child (server, proxy) that has printed its port. */
export interface FtvService extends AsyncDisposable {
  /** The port it printed. */
  readonly port: number;
  /** The child's PID (the first word of `prefix`'s, when there is one). */
  readonly pid: number;
  /** What it has written to stderr so far (the last lines, with `logLines`). */
  log(): string;
  /** Sends `signal` (e.g. SIGKILL) without waiting. */
  kill(signal: Deno.Signal): void;
  /**
   * SIGTERM, then SIGKILL after the grace period; waits for the exit and the
   * end of its log. Later calls share the first one's outcome.
   */
  stop(options?: StopOptions): Promise<Deno.CommandStatus>;
  /** Resolves when the child has exited and its log has ended. */
  readonly exited: Promise<Deno.CommandStatus>;
}

/** An `ftv` child that exited, or timed out, before its ready line. */
export class StartError extends Error {
  /** What it wrote to stderr. */
  readonly log: string;
  /** Whether it was killed for taking too long (else it exited). */
  readonly timedOut: boolean;

  /** An error for `command`, which printed `log`. */
  constructor(command: string, code: number, log: string, timedOut: boolean) {
    super(
      `Cannot start ftv ${command}: no port logged (exit ${code}${
        timedOut ? ", killed for taking too long" : ""
      })\n${log}`,
    );
    this.name = "StartError";
    this.log = log;
    this.timedOut = timedOut;
  }
}

/** Reads a child's stderr as text: up to a pattern, then to its end. */
class LogReader {
  #reader: ReadableStreamDefaultReader<string>;
  #lines: number | undefined;
  text = "";

  constructor(stream: ReadableStream<Uint8Array>, lines?: number) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    this.#lines = lines;
  }

  /** Reads until `pattern` matches; its first group, or undefined at the end. */
  async until(pattern: RegExp): Promise<string | undefined> {
    for (let i = 0; i < MAX_READS; i++) {
      const { value, done } = await this.#reader.read();
      if (done) return undefined;
      this.text += value;
      const match = pattern.exec(this.text);
      if (match) return match[1] ?? "";
    }
    return undefined;
  }

  /** Reads to the end, keeping the last `lines` lines. */
  async drain(): Promise<void> {
    for (let i = 0; i < MAX_READS; i++) {
      const { value, done } = await this.#reader.read();
      if (done) return;
      this.text += value;
      if (this.#lines !== undefined) {
        const lines = this.text.split("\n");
        if (lines.length > this.#lines + 1) {
          this.text = lines.slice(-this.#lines - 1).join("\n");
        }
      }
    }
    await this.#reader.cancel();
  }

  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => undefined);
  }
}

/**
 * Starts `ftv <args>` and resolves once its stderr matches the ready line;
 * a child that exits or takes too long first is killed and the promise
 * rejects with a {@linkcode StartError}.
 */
export async function startFtv(
  args: readonly string[],
  options: StartFtvOptions = {},
): Promise<FtvService> {
  const command = ftvCommand(args, options);
  const handle = spawnProcess(command.program, command.args, {
    stderr: "piped",
    group: options.group ?? false,
  });
  const log = new LogReader(handle.process.stderr, options.logLines);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    handle.signal("SIGKILL");
  }, options.startTimeoutMs ?? START_TIMEOUT_MS);
  let port: string | undefined;
  try {
    port = await log.until(options.ready ?? SERVER_READY);
  } finally {
    clearTimeout(timer);
  }
  if (port === undefined) {
    handle.signal("SIGKILL");
    await log.cancel();
    const status = await handle.status;
    throw new StartError(args[0] ?? "", status.code, log.text, timedOut);
  }
  const drained = log.drain().catch(() => undefined);
  const exited = handle.status.then(async (status) => {
    await drained;
    return status;
  });
  let stopped: Promise<Deno.CommandStatus> | undefined;
  const stop = (stopOptions: StopOptions = {}) =>
    stopped ??= handle.stop({
      graceMs: options.stopGraceMs ?? STOP_GRACE_MS,
      ...stopOptions,
    }).then(() => exited);
  return {
    port: Number(port),
    pid: handle.pid,
    log: () => log.text,
    kill: handle.signal,
    stop,
    exited,
    async [Symbol.asyncDispose]() {
      await stop();
    },
  };
}
