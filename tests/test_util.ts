/**
 * Shared helpers for ftv's tests: temporary folders, random files, digests,
 * running the CLI as a child process, a server child whose port is read from
 * its log, and raw sockets that read until the peer closes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Logger, type LogLevel } from "../base/log.ts";
export { exists } from "../base/paths.ts";
import {
  type ControlMessage,
  encodeControl,
  type Frame,
  FrameReader,
  PROTOCOL_VERSION,
} from "../protocol.ts";
import { type FtvServer, serve, type ServeOptions } from "../server.ts";
import {
  ftvCommand,
  PROXY_READY,
  runProcess,
  SERVER_READY,
  startFtv,
} from "../tools/harness.ts";

export {
  DENO_RUN_ARGS,
  denoArgs,
  freePort as unusedPort,
  MOD_PATH,
} from "../tools/harness.ts";

/** One log line in the seed's format. */
export const LOG_LINE =
  /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d - FileTransfer(Client|Server|Demo) - (INFO|WARNING|ERROR) - /;

/** What a stack trace line looks like; never shown to a CLI user. */
export const STACK_LINE = "    at ";

/** Longest a CLI child may run before it is killed and the test fails. */
const CLI_TIMEOUT_MS = 30_000;
/** Bound on stream reads in any one loop here. */
const MAX_READS = 1_000_000;

/** A temporary folder removed (with its contents) on dispose. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
  /** `path` joined with `parts` by "/". */
  join(...parts: string[]): string;
}

/** Creates a temporary folder; hold it with `await using`. */
export async function tempDir(prefix = "ftv-test-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    join: (...parts) => [path, ...parts].join("/"),
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

export { writeRandomFile } from "../demo.ts";

/** SHA-256 of a file as lowercase hex, streamed through `node:crypto`. */
export async function sha256File(path: string): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const hash = createHash("sha256");
  const buffer = new Uint8Array(1024 * 1024);
  for (let i = 0; i < MAX_READS; i++) {
    const got = await file.read(buffer);
    if (got === null) return hash.digest("hex");
    hash.update(buffer.subarray(0, got));
  }
  throw new RangeError(`Cannot hash ${path}: more than ${MAX_READS} reads`);
}

const commandPresence = new Map<string, boolean>();

/** Whether an external command can be run here. */
export async function hasCommand(name: string): Promise<boolean> {
  let present = commandPresence.get(name);
  if (present === undefined) {
    try {
      await new Deno.Command(name, {
        args: ["--version"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).output();
      present = true;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      present = false;
    }
    commandPresence.set(name, present);
  }
  return present;
}

/** The digest `sha256sum` prints for `path` (computed natively when it is absent). */
export async function sha256sum(path: string): Promise<string> {
  if (!(await hasCommand("sha256sum"))) return await sha256File(path);
  const { code, stdout } = await new Deno.Command("sha256sum", {
    args: [path],
    stdin: "null",
    stderr: "inherit",
  }).output();
  if (code !== 0) throw new Error(`sha256sum ${path} exited with ${code}`);
  return new TextDecoder().decode(stdout).split(/\s/)[0]!;
}

/** Whether two files hold the same bytes: `cmp` when present, else SHA-256. */
export async function sameBytes(a: string, b: string): Promise<boolean> {
  if (await hasCommand("cmp")) {
    const { code } = await new Deno.Command("cmp", {
      args: ["-s", a, b],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output();
    if (code > 1) throw new Error(`cmp ${a} ${b} failed with ${code}`);
    return code === 0;
  }
  const [sa, sb] = await Promise.all([sha256File(a), sha256File(b)]);
  return sa === sb;
}

/** Names in a folder, sorted. */
export async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) names.push(entry.name);
  return names.sort();
}

/** What a finished CLI child did. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Wall-clock milliseconds from spawn to exit. */
  ms: number;
}

/** Options for {@linkcode runCli}. */
export interface RunCliOptions {
  /** Working folder of the child. */
  cwd?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Kill the child after this long. @default 30000 */
  timeoutMs?: number;
  /** `deno run` permission flags instead of {@linkcode DENO_RUN_ARGS}'s. */
  permissions?: readonly string[];
}

/** Runs `ftv <args>` as a child process and captures its output. */
export function runCli(
  args: string[],
  options: RunCliOptions = {},
): Promise<CliResult> {
  return spawnCli(args, options).result;
}

/** Non-empty lines of `text`. */
export function lines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

/**
 * The one `ftv: ` line a failed command printed on stderr, where every other
 * line is a log line; throws when there is none, several, or a stack trace.
 */
export function failureMessage(stderr: string): string {
  assert.ok(!stderr.includes(STACK_LINE), `stack trace on stderr:\n${stderr}`);
  const other = lines(stderr).filter((line) => !LOG_LINE.test(line));
  assert.equal(
    other.length,
    1,
    `expected one message on stderr, got:\n${stderr}`,
  );
  assert.match(other[0]!, /^ftv: /);
  return other[0]!;
}

/** A running `ftv server` child process; stopped with SIGTERM on dispose. */
export interface ServerProcess extends AsyncDisposable {
  /** The port the server logged. */
  readonly port: number;
  /** Everything the server has written to stderr so far. */
  log(): string;
  /** Sends SIGTERM, waits for the exit and the end of its log. */
  stop(): Promise<Deno.CommandStatus>;
}

/**
 * Starts `ftv server --host 127.0.0.1 --port 0 <args>` and resolves once it
 * has logged the port it bound. A `--port` in `args` wins over the 0.
 */
export function spawnServer(args: string[]): Promise<ServiceProcess> {
  return spawnService(
    ["server", "--host", "127.0.0.1", "--port", "0", ...args],
    SERVER_READY,
  );
}

/**
 * Starts `ftv proxy --listen 127.0.0.1:0 --target 127.0.0.1:<targetPort>
 * <args>` and resolves once it has logged the port it listens on.
 */
export function spawnProxy(
  targetPort: number,
  args: string[] = [],
): Promise<ServiceProcess> {
  return spawnService(
    [
      "proxy",
      "--listen",
      "127.0.0.1:0",
      "--target",
      `127.0.0.1:${targetPort}`,
      ...args,
    ],
    PROXY_READY,
  );
}

/** A long-running `ftv` child (server, proxy) that can also be killed hard. */
export interface ServiceProcess extends ServerProcess {
  /** Sends `signal` (e.g. SIGKILL) without waiting. */
  kill(signal: Deno.Signal): void;
  /** Resolves when the child has exited and its log has ended. */
  readonly exited: Promise<Deno.CommandStatus>;
}

/**
 * Starts `ftv <args>` and resolves once its stderr matches `ready`, whose
 * first group is the port it bound. `permissions` replace the default
 * `deno run` flags.
 */
export function spawnService(
  args: string[],
  ready: RegExp,
  permissions?: readonly string[],
): Promise<ServiceProcess> {
  return startFtv(args, {
    ready,
    ...(permissions === undefined ? {} : { permissions }),
  });
}

/** Collects log lines of in-process servers and clients; lets a test wait for one. */
export class LogCapture {
  readonly lines: string[] = [];
  #waiters: { pattern: RegExp; resolve: () => void }[] = [];

  /** A logger for `component` writing here. */
  logger(component: string, level: LogLevel = "INFO"): Logger {
    return new Logger(component, {
      level,
      sink: (line) => {
        this.lines.push(line);
        this.#waiters = this.#waiters.filter((waiter) => {
          if (!waiter.pattern.test(line)) return true;
          waiter.resolve();
          return false;
        });
      },
    });
  }

  /** Resolves once a line matches `pattern`; rejects after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs = 5000): Promise<void> {
    if (this.lines.some((line) => pattern.test(line))) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const timer = setTimeout(() => {
      this.#waiters = this.#waiters.filter((waiter) => waiter !== entry);
      reject(
        new Error(`No log line matched ${pattern} within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    const entry = {
      pattern,
      resolve: () => {
        clearTimeout(timer);
        resolve();
      },
    };
    this.#waiters.push(entry);
    return promise;
  }
}

/** How a raw connection ended. */
export interface ClosedConnection {
  /** Frames the peer sent before closing. */
  frames: Frame[];
  /** "eof" for a clean close, "reset" for a TCP reset. */
  end: "eof" | "reset";
}

/**
 * Reads `conn` until the peer closes it and decodes what arrived; fails when
 * the peer keeps it open longer than `timeoutMs`.
 */
export async function readUntilClosed(
  conn: Deno.Conn,
  timeoutMs = 5000,
): Promise<ClosedConnection> {
  const pieces: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  let timedOut = false;
  let end: "eof" | "reset" | undefined;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    for (let i = 0; i < MAX_READS && end === undefined; i++) {
      let got: number | null;
      try {
        got = await conn.read(buffer);
      } catch (error) {
        if (timedOut) break;
        if (error instanceof Deno.errors.ConnectionReset) {
          end = "reset";
          break;
        }
        throw error;
      }
      if (got === null) end = "eof";
      else pieces.push(buffer.slice(0, got));
    }
  } finally {
    clearTimeout(timer);
  }
  if (end === undefined) {
    throw new Error(`The peer kept the connection open for ${timeoutMs} ms`);
  }
  return { frames: await decodeFrames(concat(pieces)), end };
}

/** Decodes whole frames from `bytes`; a trailing partial frame throws. */
export async function decodeFrames(bytes: Uint8Array): Promise<Frame[]> {
  let offset = 0;
  const reader = new FrameReader({
    read(p) {
      if (offset >= bytes.length) return Promise.resolve(null);
      const n = Math.min(p.length, bytes.length - offset);
      p.set(bytes.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
  });
  const frames: Frame[] = [];
  for (let i = 0; i < MAX_READS; i++) {
    const frame = await reader.next();
    if (frame === null) break;
    frames.push(frame);
  }
  return frames;
}

/** Reads the next frame from `reader`, closing `conn` when none comes in `timeoutMs`. */
export async function nextFrame(
  reader: FrameReader,
  conn: Deno.Conn,
  timeoutMs = 5000,
): Promise<Frame | null> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    return await reader.next();
  } catch (error) {
    if (timedOut) throw new Error(`No frame arrived within ${timeoutMs} ms`);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** Writes all of `bytes` to `conn`. */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
): Promise<void> {
  let written = 0;
  for (let i = 0; i < MAX_READS && written < bytes.length; i++) {
    written += await conn.write(bytes.subarray(written));
  }
}

/** A `hello` frame, for tests that speak the protocol by hand. */
export const HELLO: Uint8Array = encodeControl({
  type: "hello",
  version: PROTOCOL_VERSION,
  agent: "raw-test",
});

/** A raw connection that has exchanged hellos. */
export interface RawSession extends Disposable {
  conn: Deno.TcpConn;
  reader: FrameReader;
  /** Sends `message` and returns the reply. */
  ask(message: ControlMessage): Promise<Frame | null>;
}

/** Connects to 127.0.0.1:`port` and exchanges hellos, frame by frame. */
export async function rawSession(port: number): Promise<RawSession> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reader = new FrameReader(conn);
  await writeAll(conn, HELLO);
  const hello = await nextFrame(reader, conn);
  if (hello?.kind !== "control" || hello.message.type !== "hello") {
    conn.close();
    throw new Error("Cannot start a raw session: no hello from the server");
  }
  return {
    conn,
    reader,
    async ask(message) {
      await writeAll(conn, encodeControl(message));
      return await nextFrame(reader, conn);
    },
    [Symbol.dispose]() {
      try {
        conn.close();
      } catch {
        // Closed by a timeout in nextFrame already.
      }
    },
  };
}

function concat(pieces: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const piece of pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/** A CLI child running in the background, to be watched and maybe killed. */
export interface CliProcess extends AsyncDisposable {
  readonly pid: number;
  /** Sends `signal` (e.g. SIGKILL) without waiting. */
  kill(signal: Deno.Signal): void;
  /** Whether the child has exited. */
  readonly done: boolean;
  /** Resolves when the child has exited, with what it printed. */
  readonly result: Promise<CliResult>;
}

/**
 * Starts `ftv <args>` in the background; its output is collected as it
 * comes. Killed after `timeoutMs`, and with SIGKILL on dispose if still
 * running.
 */
export function spawnCli(
  args: string[],
  options: RunCliOptions = {},
): CliProcess {
  const command = ftvCommand(args, options);
  return spawnWithDeadline(command.program, command.args, {
    ...options,
    label: `ftv ${args.join(" ")}`,
  });
}

/** Options for {@linkcode spawnWithDeadline}. */
export interface DeadlineOptions {
  /** Working folder of the child. */
  cwd?: string;
  /** Environment of the child. */
  env?: Record<string, string>;
  /** Kill the child after this long. @default 30000 */
  timeoutMs?: number;
  /** How the child is named when it is killed. @default the program */
  label?: string;
}

/**
 * Starts `program` with piped output, killed with SIGKILL after
 * `timeoutMs` (its result then rejects, quoting what it printed).
 */
export function spawnWithDeadline(
  program: string,
  args: string[],
  options: DeadlineOptions = {},
): CliProcess {
  const timeoutMs = options.timeoutMs ?? CLI_TIMEOUT_MS;
  const child = runProcess(program, args, {
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.env === undefined ? {} : { env: options.env }),
    timeoutMs,
  });
  const result = child.result.then(({ timedOut, ...printed }) => {
    if (timedOut) {
      throw new Error(
        `${
          options.label ?? program
        } was killed after ${timeoutMs} ms\n${printed.stderr}${printed.stdout}`,
      );
    }
    return printed;
  });
  // A caller that never awaits `result` still gets the child reaped on dispose.
  result.catch(() => undefined);
  return {
    pid: child.pid,
    kill: child.kill,
    get done() {
      return child.done;
    },
    result,
    async [Symbol.asyncDispose]() {
      await child[Symbol.asyncDispose]();
    },
  };
}

/** Options for {@linkcode pollUntil}. */
export interface PollOptions {
  /** Give up after this long. @default 15000 */
  timeoutMs?: number;
  /** Pause between checks. @default 10 */
  intervalMs?: number;
  /** What is awaited, for the error message. */
  what?: string;
}

/**
 * Checks `condition` until it returns true, a bounded number of times; for
 * watching progress that has no event to wait on (a growing file). Throws
 * once `timeoutMs` has passed.
 */
export async function pollUntil(
  condition: () => boolean | Promise<boolean>,
  options: PollOptions = {},
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 15_000;
  const intervalMs = options.intervalMs ?? 10;
  const deadline = performance.now() + timeoutMs;
  const maxChecks = Math.ceil(timeoutMs / intervalMs) + 1;
  for (let i = 0; i < maxChecks; i++) {
    if (await condition()) return;
    if (performance.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(
    `Gave up after ${timeoutMs} ms waiting for ${
      options.what ?? "a condition"
    }`,
  );
}

/** Size of `path` in bytes, or `undefined` when it does not exist. */
export async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await Deno.stat(path)).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/**
 * An in-process server on 127.0.0.1, port 0, storing under `tmp/srv` and
 * logging into `logs`; `options` override any of that.
 */
export function testServer(
  tmp: TempDir,
  logs: LogCapture,
  options: ServeOptions = {},
): Promise<FtvServer> {
  return serve({
    host: "127.0.0.1",
    port: 0,
    dir: tmp.join("srv"),
    log: logs.logger("FileTransferServer"),
    ...options,
  });
}
