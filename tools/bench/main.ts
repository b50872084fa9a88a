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
 * own run (see {@linkcode discard}), and the CPU load of other processes is
 * sampled before and after, since either would skew every figure here.
 *
 * Everything listens on 127.0.0.1 only, and every process the bench starts is
 * stopped before it exits, on error and on Ctrl-C too.
 *
 * @module
 */

import { createHash, randomFillSync } from "node:crypto";
import { parseArgs } from "node:util";
import { Rng } from "../../faults/rng.ts";

const HOST = "127.0.0.1";
const MOD = decodeURIComponent(
  new URL("../../mod.ts", import.meta.url).pathname,
);
const ROOT = MOD.slice(0, MOD.lastIndexOf("/"));
const DENO = Deno.execPath();
const DENO_FLAGS = ["run", "--allow-net", "--allow-read", "--allow-write"];
const MB = 1e6;
const MiB = 1024 * 1024;
const ERROR_RATE = "0.05";
/** Repair rounds allowed in the error-rate rows, so a bad draw cannot fail a run. */
const ERROR_RETRIES = "20";
/** Buffer size socat is given (its default of 8 KiB would handicap it). */
const SOCAT_BUFFER = 256 * 1024;
/** Size of the text files of the `send-text` and `send-log` rows. */
const TEXT_SIZE = 100 * MiB;
/**
 * Where the `send-text` row finds real text: the C headers that every
 * Debian or Ubuntu machine with a compiler has. Without them the row sends
 * the log-like text instead, and says so.
 */
const TEXT_ROOT = "/usr/include";
/** Seed of the log text's pseudo-random fields, so every bench sends the same text. */
const TEXT_SEED = 20250101;
/** The tree rows' tree: this many folders of this many files of this size. */
const TREE_DIRS = 100;
const TREE_FILES = 100;
const TREE_FILE_SIZE = 1024;
/** One file in this many has its SHA-256 checked in every copy of the tree. */
const TREE_SAMPLE_EVERY = 500;
/** Targets printed beside their ratios. */
const TARGET = {
  /** `send` (auto) throughput / `send --compress none` throughput, at least. */
  autoVsNone: 0.95,
  /** ftv's time / rsync's time for the tree, at most. */
  treeVsRsync: 1.5,
  /** Wire bytes / bytes of the text file, below. */
  textWire: 0.15,
};
/** Flags for ftv's receiving side (server, `get`, `client`): `--no-fsync` or none. */
let receiverFlags: string[] = [];

const USAGE = `Usage: deno task bench [options]

  --size SIZE          test file size, e.g. 1GiB, 256MiB, 500MB (default: 1GiB)
  --runs N             timed runs of every variant, alternating (default: 3)
  --json               print one JSON object instead of the table
  --clients N          clients in the concurrent row (default: 16)
  --client-size SIZE   bytes each concurrent client sends (default: 64MiB)
  --only IDS           comma-separated rows: send,send-none,send-text,send-log,
                       get,send-tls,client,send-err,get-err,clients,tree,
                       tree-get,socat,rsync,rsync-sha1,rsync-tree,scp
                       (default: all)
  --rss-size SIZE      instead of the benchmark, measure each side's peak RSS
                       while moving one file of SIZE (e.g. 4GiB)
  --dir DIR            where to put temporary files (default: system temp)
  --no-fsync           pass --no-fsync to ftv's receiving side, as the
                       baselines never sync (default: ftv syncs every copy)`;

const ROW_IDS = [
  "send",
  "send-none",
  "send-text",
  "send-log",
  "get",
  "send-tls",
  "client",
  "send-err",
  "get-err",
  "clients",
  "tree",
  "tree-get",
  "socat",
  "rsync",
  "rsync-sha1",
  "rsync-tree",
  "scp",
] as const;

/** A failure the bench explains in one line. */
class BenchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BenchError";
  }
}

// ---------------------------------------------------------------- options

interface Options {
  size: number;
  runs: number;
  json: boolean;
  clients: number;
  clientSize: number;
  only: Set<string>;
  rssSize?: number;
  dir?: string;
  noFsync: boolean;
}

function parseOptions(args: string[]): Options | undefined {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        size: { type: "string", default: "1GiB" },
        runs: { type: "string", default: "3" },
        json: { type: "boolean", default: false },
        clients: { type: "string", default: "16" },
        "client-size": { type: "string", default: "64MiB" },
        only: { type: "string" },
        "rss-size": { type: "string" },
        dir: { type: "string" },
        "no-fsync": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: false,
      strict: true,
    });
  } catch (error) {
    throw new BenchError((error as Error).message.split("\n")[0]!);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(USAGE);
    return undefined;
  }
  const only = new Set<string>(
    v.only === undefined ? ROW_IDS : v.only.split(",").map((s) => s.trim()),
  );
  for (const id of only) {
    if (!(ROW_IDS as readonly string[]).includes(id)) {
      throw new BenchError(
        `--only: unknown row "${id}" (rows: ${ROW_IDS.join(",")})`,
      );
    }
  }
  const options: Options = {
    size: parseSize(v.size, "--size"),
    runs: parseCount(v.runs, "--runs", 1, 100),
    json: v.json,
    clients: parseCount(v.clients, "--clients", 1, 256),
    clientSize: parseSize(v["client-size"], "--client-size"),
    only,
    noFsync: v["no-fsync"],
  };
  if (v["rss-size"] !== undefined) {
    options.rssSize = parseSize(v["rss-size"], "--rss-size");
  }
  if (v.dir !== undefined) options.dir = v.dir;
  return options;
}

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: 1024,
  kib: 1024,
  kb: 1e3,
  m: MiB,
  mib: MiB,
  mb: 1e6,
  g: 1024 * MiB,
  gib: 1024 * MiB,
  gb: 1e9,
};

/** `1GiB`, `64MiB`, `500MB`, `4096` (bytes). */
export function parseSize(raw: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(raw.trim());
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  const bytes = match && unit ? Math.round(Number(match[1]) * unit) : NaN;
  if (!(bytes >= 1 && bytes <= 2 ** 50)) {
    throw new BenchError(
      `${flag} must be a size like 1GiB, 64MiB or 500MB, got "${raw}"`,
    );
  }
  return bytes;
}

function parseCount(raw: string, flag: string, min: number, max: number) {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    throw new BenchError(
      `${flag} must be a whole number from ${min} to ${max}, got "${raw}"`,
    );
  }
  return value;
}

// ---------------------------------------------------------------- processes

const live = new Set<Deno.ChildProcess>();
const SETSID = findTool("setsid");
const TIME = findTool("time", ["/usr/bin"]);

/** An executable's path, from PATH and `extra` folders, or undefined. */
function findTool(name: string, extra: string[] = []): string | undefined {
  const folders = [
    ...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean),
    ...extra,
    "/usr/sbin",
    "/usr/local/sbin",
    "/sbin",
  ];
  for (const folder of folders) {
    try {
      const info = Deno.statSync(`${folder}/${name}`);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) {
        return `${folder}/${name}`;
      }
    } catch {
      // Not here.
    }
  }
  return undefined;
}

interface SpawnOptions {
  stdout?: "piped" | "null";
  stderr?: "piped" | "null";
  cwd?: string;
}

/**
 * Starts a command in its own process group (via `setsid`, which execs in
 * place), so stopping it also stops its pipeline and its children.
 */
function spawn(
  cmd: string,
  args: string[],
  options: SpawnOptions = {},
): Deno.ChildProcess {
  const [program, argv] = SETSID ? [SETSID, [cmd, ...args]] : [cmd, args];
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args: argv,
      stdin: "null",
      stdout: options.stdout ?? "null",
      stderr: options.stderr ?? "null",
      ...(options.cwd ? { cwd: options.cwd } : {}),
    }).spawn();
  } catch (error) {
    throw new BenchError(`cannot start ${cmd}: ${(error as Error).message}`);
  }
  live.add(child);
  child.status.finally(() => live.delete(child)).catch(() => undefined);
  return child;
}

function signalGroup(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    Deno.kill(SETSID ? -child.pid : child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
async function stopProcess(
  child: Deno.ChildProcess,
  graceMs = 3000,
): Promise<void> {
  if (!live.has(child)) {
    if (SETSID) signalGroup(child, "SIGKILL"); // stragglers in its group
    return;
  }
  signalGroup(child, "SIGTERM");
  const exited = await within(child.status, graceMs);
  if (!exited) {
    signalGroup(child, "SIGKILL");
    await child.status;
  }
}

/** Stops every process still running. */
async function stopAll(): Promise<void> {
  await Promise.all([...live].map((child) => stopProcess(child, 1000)));
}

/** True when `promise` settles within `ms`. */
async function within(promise: Promise<unknown>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(() => true, () => true),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

interface Finished {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

async function readAll(
  stream: ReadableStream<Uint8Array> | null,
): Promise<string> {
  if (!stream) return "";
  return await new Response(stream).text();
}

/**
 * Runs a command to the end (killing it after `timeoutMs`); times it.
 * `watch`, given the child's pid, starts watching it and returns how to stop.
 */
async function runCommand(
  cmd: string,
  args: string[],
  timeoutMs: number,
  cwd?: string,
  watch?: (pid: number) => () => Promise<void>,
): Promise<Finished & { pid: number }> {
  const started = performance.now();
  const child = spawn(cmd, args, { stdout: "piped", stderr: "piped", cwd });
  const stopWatching = watch?.(child.pid);
  const done = Promise.all([
    child.status,
    readAll(child.stdout),
    readAll(child.stderr),
  ]);
  try {
    if (!(await within(done, timeoutMs))) {
      await stopProcess(child, 500);
      throw new BenchError(
        `${basename(cmd)} ${args[0] ?? ""} took longer than ${
          Math.round(timeoutMs / 1000)
        } s; stopped it`,
      );
    }
  } finally {
    await stopWatching?.();
  }
  const [status, stdout, stderr] = await done;
  return {
    code: status.code,
    stdout,
    stderr,
    ms: performance.now() - started,
    pid: child.pid,
  };
}

/** Last non-empty line of `text`, for one-line error messages. */
function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.at(-1) ?? "(no output)";
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * Reads a /proc file through `cat`: Deno asks for --allow-all before it reads
 * /proc itself, and the bench task grants only --allow-run for processes.
 */
async function readProc(path: string): Promise<string | undefined> {
  try {
    const out = await runCommand(CAT, [path], 10_000);
    return out.code === 0 ? out.stdout : undefined;
  } catch {
    return undefined;
  }
}

const CAT = findTool("cat") ?? "cat";

/** Peak resident set size (KiB) of a live process, from /proc. */
async function vmHwm(pid: number): Promise<number | undefined> {
  const status = await readProc(`/proc/${pid}/status`);
  const match = status && /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/** The `deno` process at or just under `pid` (setsid/time may sit between). */
async function denoPid(pid: number): Promise<number> {
  for (let depth = 0; depth < 3; depth++) {
    const comm = await readProc(`/proc/${pid}/comm`);
    if (comm === undefined || comm.trim() === "deno") return pid;
    const children = (await readProc(`/proc/${pid}/task/${pid}/children`))
      ?.trim().split(/\s+/).filter(Boolean).map(Number) ?? [];
    if (children.length === 0) return pid;
    pid = children[0]!;
  }
  return pid;
}

/**
 * Share of all CPUs busy over `ms`, from /proc/stat: measured with nothing of
 * the bench's running, it shows load from other processes, which would skew
 * every figure.
 */
async function cpuBusy(ms = 1000): Promise<number | undefined> {
  const read = async () => {
    const line = (await readProc("/proc/stat"))?.split("\n")[0];
    const fields = line?.trim().split(/\s+/).slice(1).map(Number) ?? [];
    if (fields.length < 5) return undefined;
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = fields[3]! + fields[4]!;
    return { total, idle };
  };
  const before = await read();
  await sleep(ms);
  const after = await read();
  if (!before || !after || after.total === before.total) return undefined;
  return 1 - (after.idle - before.idle) / (after.total - before.total);
}

function describeBusy(busy: number | undefined): string {
  if (busy === undefined) return "unknown";
  const text = `${(busy * 100).toFixed(0)}%`;
  return busy > 0.1
    ? `${text} (other processes are busy: figures skewed)`
    : text;
}

/** Whether the bench runs as root (`id -u`; Deno.uid() needs --allow-sys). */
async function isRoot(): Promise<boolean> {
  const out = await runCommand(findTool("id") ?? "id", ["-u"], 10_000)
    .catch(() => undefined);
  return out?.stdout.trim() === "0";
}

/** A free TCP port on 127.0.0.1 (bound and released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** True when something listens on 127.0.0.1:`port` (read from /proc/net/tcp). */
async function isListening(port: number): Promise<boolean> {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  const table = await readProc("/proc/net/tcp") ?? "";
  return table.split("\n").some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[1] === hex && fields[3] === "0A";
  });
}

/** Waits until `port` listens; fails when `child` exits first. */
async function waitListening(
  port: number,
  child: Deno.ChildProcess,
  what: string,
  stderr?: () => string,
): Promise<void> {
  const deadline = performance.now() + 15_000;
  while (!(await isListening(port))) {
    if (!live.has(child)) {
      throw new BenchError(
        `${what} exited before listening: ${lastLine(stderr?.() ?? "")}`,
      );
    }
    if (performance.now() > deadline) {
      throw new BenchError(`${what} did not listen on port ${port} in 15 s`);
    }
    await sleep(10);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Flushes dirty pages so one run's writeback does not slow the next. */
async function syncDisks(): Promise<void> {
  const sync = findTool("sync");
  if (sync) await runCommand(sync, [], 120_000).catch(() => undefined);
}

/**
 * Copies set aside by {@linkcode discard}. A received copy is not deleted
 * after its run but just before the next timed section: on a VM that hands
 * idle free memory back to its host (free page reporting, ~2 s after it is
 * freed), touching that memory again costs ~2.5 CPU-s of system time per
 * GiB, so a copy deleted long before the next run would charge whichever
 * tool runs next. Deleted right before, its page cache is reused while the
 * host still backs it.
 */
const setAside: string[] = [];
let setAsideDir = "";
/** Paths moved aside so far, for unique names. */
let setAsideCount = 0;
/**
 * The VM reports free memory 2 s after a free arms its report, and then
 * reports all that is free. A copy deleted within that time of the previous
 * one was handed back just as the next run started reusing it (~1.5 CPU-s
 * per GiB more, on whichever of two back-to-back rows came second), so
 * {@linkcode releaseSetAside} waits until this long after the last release.
 */
const REPORT_DELAY_MS = 2500;
/** When {@linkcode releaseSetAside} last deleted something. */
let lastRelease = -Infinity;
/** The bench's temporary folder. */
let workDir = "";

/**
 * Moves `path` (file or folder) aside, to be deleted by
 * {@linkcode releaseSetAside}; with `keep`, only with the bench's folder when
 * it ends (see {@linkcode Load.keep}).
 */
async function discard(path: string, keep = false): Promise<void> {
  if (!(await exists(path))) return;
  const to = `${setAsideDir}/${setAsideCount++}-${basename(path)}`;
  await Deno.rename(path, to);
  if (!keep) setAside.push(to);
}

/**
 * Deletes what was set aside and syncs; called right before a timed section.
 * A section that writes little (`free` false) only syncs, leaving the memory
 * of what was set aside to the next one that writes a big copy.
 */
async function releaseSetAside(free = true): Promise<void> {
  if (free && setAside.length) {
    await sleep(Math.max(0, lastRelease + REPORT_DELAY_MS - performance.now()));
    while (setAside.length) await remove(setAside.pop()!);
    lastRelease = performance.now();
  }
  await syncDisks();
}

// ---------------------------------------------------------------- files

/** Writes `pieces` one after the other to `path` (made or truncated). */
async function writePieces(
  path: string,
  pieces: Iterable<Uint8Array>,
): Promise<void> {
  using file = await Deno.create(path);
  for (const piece of pieces) {
    let written = 0;
    while (written < piece.length) {
      written += await file.write(piece.subarray(written));
    }
  }
}

/** `bytes` random bytes, in pieces of up to 16 MiB (one buffer, refilled). */
function* randomPieces(bytes: number): Generator<Uint8Array> {
  const piece = new Uint8Array(Math.min(bytes, 16 * MiB));
  for (let left = bytes; left > 0; left -= piece.length) {
    const part = piece.subarray(0, Math.min(piece.length, left));
    randomFillSync(part);
    yield part;
  }
}

const LOG_LEVELS = ["INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const LOG_SERVICES = ["api", "auth", "billing", "search", "worker"];
const LOG_WORDS = [
  "request",
  "handled",
  "cache",
  "miss",
  "session",
  "opened",
  "closed",
  "retry",
  "upstream",
  "timeout",
  "queue",
  "flushed",
];

/**
 * `bytes` of log-like text, the same every time (seeded): timestamped lines
 * with a level, a service and its pid, a few words, a sequence number, the
 * service's request counter and a latency; the last line is cut where the
 * size is reached.
 */
function* logTextPieces(bytes: number): Generator<Uint8Array> {
  const rng = new Rng(TEXT_SEED);
  const pick = (list: string[]) => list[rng.int(list.length)]!;
  const encoder = new TextEncoder();
  const requests = LOG_SERVICES.map(() => 0);
  let clock = Date.UTC(2025, 0, 1);
  let seq = 0;
  for (let left = bytes; left > 0;) {
    let text = "";
    while (text.length < MiB) {
      clock += rng.int(40);
      const service = rng.int(LOG_SERVICES.length);
      text += `${new Date(clock).toISOString()} ${pick(LOG_LEVELS)} ${
        LOG_SERVICES[service]
      }[${1000 + service}] ${pick(LOG_WORDS)} ${pick(LOG_WORDS)} ${
        pick(LOG_WORDS)
      } seq=${++seq} requests=${++requests[service]!} ms=${rng.int(1000)}\n`;
    }
    const piece = encoder.encode(text).subarray(0, left);
    left -= piece.length;
    yield piece;
  }
}

/**
 * The text files under `root` (no NUL byte in their first 4 KiB), sorted by
 * path so every bench on a machine sends the same text; none when `root`
 * cannot be read.
 */
function textFiles(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (entry.isFile && isText(path)) found.push(path);
    }
  };
  walk(root);
  return found.sort();
}

function isText(path: string): boolean {
  try {
    using file = Deno.openSync(path);
    const head = new Uint8Array(4096);
    const got = file.readSync(head) ?? 0;
    return got > 0 && !head.subarray(0, got).includes(0);
  } catch {
    return false;
  }
}

/** `bytes` of the `files` one after the other, from the first again when they run out. */
function* concatenatedPieces(
  files: string[],
  bytes: number,
): Generator<Uint8Array> {
  for (let left = bytes, index = 0; left > 0; index++) {
    const piece = Deno.readFileSync(files[index % files.length]!)
      .subarray(0, left);
    left -= piece.length;
    yield piece;
  }
}

/** SHA-256 (hex) of a file, as `sha256sum` prints it. */
async function sha256File(path: string): Promise<string> {
  using file = await Deno.open(path, { read: true });
  const hash = createHash("sha256");
  const buffer = new Uint8Array(4 * MiB);
  for (;;) {
    const got = await file.read(buffer);
    if (got === null) break;
    hash.update(buffer.subarray(0, got));
  }
  return hash.digest("hex");
}

interface Source {
  path: string;
  size: number;
  sha256: string;
}

/** The `send-text` row's file, and what text it holds. */
interface TextSource extends Source {
  kind: string;
}

async function makeSource(
  path: string,
  size: number,
  pieces: (bytes: number) => Iterable<Uint8Array> = randomPieces,
): Promise<Source> {
  await writePieces(path, pieces(size));
  // Hashing reads it back: the file is now in the page cache.
  return { path, size, sha256: await sha256File(path) };
}

/**
 * Checks a received copy: its size always, its SHA-256 when `full`
 * (once per variant). Never inside a timed section.
 */
async function checkCopy(
  path: string,
  source: Source,
  full: boolean,
  what: string,
): Promise<void> {
  let size: number;
  try {
    size = (await Deno.stat(path)).size;
  } catch {
    throw new BenchError(`${what}: no copy at ${path}`);
  }
  if (size !== source.size) {
    throw new BenchError(
      `${what}: copy has ${size} bytes, expected ${source.size}`,
    );
  }
  if (full) {
    const digest = await sha256File(path);
    if (digest !== source.sha256) {
      throw new BenchError(
        `${what}: copy's SHA-256 ${digest} is not the source's ${source.sha256}`,
      );
    }
  }
}

/** The tree rows' folder: what it holds, and a sample of its files' SHA-256s. */
interface TreeSource {
  path: string;
  files: number;
  bytes: number;
  /** Name inside the tree → SHA-256 (hex), one file in {@linkcode TREE_SAMPLE_EVERY}. */
  samples: Map<string, string>;
}

/** Writes {@linkcode TREE_DIRS} folders of {@linkcode TREE_FILES} random files. */
async function makeTree(path: string): Promise<TreeSource> {
  const samples = new Map<string, string>();
  const content = new Uint8Array(TREE_FILE_SIZE);
  for (let d = 0; d < TREE_DIRS; d++) {
    const dir = `d${String(d).padStart(2, "0")}`;
    await Deno.mkdir(`${path}/${dir}`, { recursive: true });
    for (let f = 0; f < TREE_FILES; f++) {
      const name = `${dir}/f${String(f).padStart(3, "0")}.dat`;
      randomFillSync(content);
      await Deno.writeFile(`${path}/${name}`, content);
      if ((d * TREE_FILES + f) % TREE_SAMPLE_EVERY === 0) {
        samples.set(name, createHash("sha256").update(content).digest("hex"));
      }
    }
  }
  const files = TREE_DIRS * TREE_FILES;
  return { path, files, bytes: files * TREE_FILE_SIZE, samples };
}

/** Files under `path` (recursively) and their total size. */
async function countFiles(
  path: string,
): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for await (const entry of Deno.readDir(path)) {
    const full = `${path}/${entry.name}`;
    if (entry.isDirectory) {
      const inner = await countFiles(full);
      files += inner.files;
      bytes += inner.bytes;
    } else if (entry.isFile) {
      files++;
      bytes += (await Deno.stat(full)).size;
    }
  }
  return { files, bytes };
}

/**
 * Checks a received copy of the tree: file count and total size, and the
 * SHA-256 of the sample files. Never inside a timed section.
 */
async function checkTree(
  path: string,
  tree: TreeSource,
  what: string,
): Promise<void> {
  if (!(await exists(path))) {
    throw new BenchError(`${what}: no copy at ${path}`);
  }
  const { files, bytes } = await countFiles(path);
  if (files !== tree.files || bytes !== tree.bytes) {
    throw new BenchError(
      `${what}: copy has ${files} files of ${bytes} bytes, expected ${tree.files} of ${tree.bytes}`,
    );
  }
  for (const [name, sha256] of tree.samples) {
    const digest = await sha256File(`${path}/${name}`).catch(() => "none");
    if (digest !== sha256) {
      throw new BenchError(
        `${what}: ${name}'s SHA-256 ${digest} is not the source's ${sha256}`,
      );
    }
  }
}

/**
 * What a row moves: a file, or a folder (`rsync -r`), stored as `name` in
 * the receiver's folder, and how a copy of it is checked.
 */
interface Load {
  path: string;
  name: string;
  bytes: number;
  folder: boolean;
  /**
   * Copies are kept until the bench ends, not deleted before the next timed
   * section: on ext4 without a journal (this VM's disk) a new inode skips
   * every inode freed in the last minute or so, one buffer lookup each, so
   * deleting a 10,000-file copy made each following copy slower (0.3 s to
   * 3 s by the sixth), whichever tool made it.
   */
  keep: boolean;
  /**
   * Much smaller than the random file: its row does not free what was set
   * aside (see {@linkcode releaseSetAside}), or the row after it would write
   * its big copy into fresh memory, ~2 CPU-s per GiB more here.
   */
  light: boolean;
  /** Rows compare only with rows of the same workload; none = the random file. */
  workload?: Workload;
  check(copy: string, index: number, what: string): Promise<void>;
}

type Workload = "text" | "tree";

/** A file as a {@linkcode Load}: its size each run, its SHA-256 on run 0. */
function fileLoad(source: Source, name: string, workload?: Workload): Load {
  return {
    path: source.path,
    name,
    bytes: source.size,
    folder: false,
    keep: false,
    // The random file is the big one; the other files are light.
    light: workload !== undefined,
    ...(workload ? { workload } : {}),
    check: (copy, index, what) => checkCopy(copy, source, index === 0, what),
  };
}

function treeText(): string {
  return `tree of ${TREE_DIRS * TREE_FILES} files x ${
    TREE_FILE_SIZE / 1024
  } KiB`;
}

function treeLoad(tree: TreeSource): Load {
  return {
    path: tree.path,
    name: "tree",
    bytes: tree.bytes,
    folder: true,
    keep: true,
    light: true,
    workload: "tree",
    check: (copy, _index, what) => checkTree(copy, tree, what),
  };
}

async function remove(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

async function freshDir(path: string): Promise<string> {
  await discard(path);
  await Deno.mkdir(path, { recursive: true });
  return path;
}

// ---------------------------------------------------------------- ftv

/** What a process used: peak RSS (KiB) and CPU seconds (user + system). */
interface Usage {
  rss?: number;
  cpu?: number;
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

const USAGE_FORMAT = "%M %U %S";
let usageFiles = 0;

interface FtvServerProcess {
  port: number;
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
async function startFtvServer(
  dir: string,
  extra: string[] = [],
): Promise<FtvServerProcess> {
  const usageFile = TIME ? `${workDir}/usage-${usageFiles++}.txt` : "";
  const [program, prefix] = TIME
    ? [TIME, ["-f", USAGE_FORMAT, "-o", usageFile, DENO]]
    : [DENO, []];
  const child = spawn(program, [
    ...prefix,
    ...DENO_FLAGS,
    MOD,
    "server",
    "--host",
    HOST,
    "--port",
    "0",
    "--dir",
    dir,
    ...receiverFlags,
    ...extra,
  ], { stderr: "piped" });
  const tail: string[] = [];
  let announce: (port: number) => void = () => {};
  const announced = new Promise<number>((resolve) => announce = resolve);
  const drained = (async () => {
    let pending = "";
    for await (
      const text of child.stderr.pipeThrough(new TextDecoderStream())
    ) {
      pending += text;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) {
        const match = /Server started on [^\s]*:(\d+)/.exec(line);
        if (match) announce(Number(match[1]));
        tail.push(line);
        if (tail.length > 20) tail.shift();
      }
    }
  })().catch(() => undefined);
  const first = await Promise.race([
    announced,
    child.status.then(() => "exited" as const),
    sleep(30_000).then(() => "timeout" as const),
  ]);
  if (typeof first !== "number") {
    await stopProcess(child, 500);
    await drained;
    throw new BenchError(
      `ftv server ${first === "exited" ? "exited" : "did not start in 30 s"}: ${
        lastLine(tail.join("\n"))
      }`,
    );
  }
  const pid = await denoPid(child.pid);
  return {
    port: first,
    async stop() {
      const rss = await vmHwm(pid);
      // SIGTERM to deno alone, so /usr/bin/time outlives it and reports.
      try {
        Deno.kill(pid, "SIGTERM");
      } catch {
        // Already gone.
      }
      if (!(await within(child.status, 5000))) await stopProcess(child);
      await stopProcess(child); // anything left in its group
      await drained;
      const usage = TIME ? await readUsage(usageFile) : {};
      return { ...usage, ...(rss === undefined ? {} : { rss }) };
    },
  };
}

interface ClientRun {
  ms: number;
  /** Peak RSS (KiB), from /usr/bin/time or by polling /proc. */
  rss: number | undefined;
  /** CPU seconds, user + system (only with /usr/bin/time). */
  cpu: number | undefined;
  /** What `--json` printed. */
  result: {
    seconds?: number;
    attempts?: number;
    retransmittedChunks?: number;
    bytes?: number;
    wireBytes?: number;
  };
}

/** Runs one ftv client command to completion, timed, with its peak RSS. */
async function runFtvClient(
  work: string,
  args: string[],
  timeoutMs: number,
): Promise<ClientRun> {
  const denoArgs = [...DENO_FLAGS, MOD, ...args];
  let rss: number | undefined;
  let cpu: number | undefined;
  let finished: Finished;
  if (TIME) {
    const usageFile = `${work}/usage-${usageFiles++}.txt`;
    finished = await runCommand(
      TIME,
      ["-f", USAGE_FORMAT, "-o", usageFile, DENO, ...denoArgs],
      timeoutMs,
    );
    ({ rss, cpu } = await readUsage(usageFile));
  } else {
    // No /usr/bin/time: poll /proc while it runs (may miss a late peak).
    let peak = 0;
    finished = await runCommand(DENO, denoArgs, timeoutMs, undefined, (pid) => {
      let polling = true;
      const poller = (async () => {
        while (polling) {
          peak = Math.max(peak, await vmHwm(pid) ?? 0);
          await sleep(100);
        }
      })();
      return async () => {
        polling = false;
        await poller;
      };
    });
    rss = peak || undefined;
  }
  if (finished.code !== 0) {
    throw new BenchError(
      `ftv ${args[0]} failed (exit ${finished.code}): ${
        lastLine(finished.stderr)
      }`,
    );
  }
  let result: ClientRun["result"] = {};
  try {
    result = JSON.parse(lastLine(finished.stdout));
  } catch {
    // --json output missing: the timing still counts.
  }
  return { ms: finished.ms, rss, cpu, result };
}

// ---------------------------------------------------------------- rows

/**
 * A sample's RSS and CPU fields: the server's, and the clients' largest RSS
 * and summed CPU (many clients run at once in one row).
 */
function usageFields(server: Usage, clients: ClientRun[]): Partial<Sample> {
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

interface Sample {
  /** Wall time of the timed section. */
  ms: number;
  /** Bytes that crossed the connection (size, or twice for a round trip). */
  bytes: number;
  serverRss?: number;
  clientRss?: number;
  /** CPU seconds (user + system) of the server, and of all clients. */
  serverCpu?: number;
  clientCpu?: number;
  /** Seconds ftv itself reported (inside the client, after start-up). */
  ftvSeconds?: number;
  /** Chunks sent again in repair rounds. */
  retransmitted?: number;
  /** Bytes ftv put on the wire / bytes it moved, as it reported them. */
  wireShare?: number;
}

interface Row {
  id: string;
  label: string;
  kind: "ftv" | "baseline";
  workload?: Workload;
  /** Why it did not run (missing tool, failed set-up or run). */
  skipped?: string;
  samples: Sample[];
  setup?(): Promise<void>;
  run(index: number): Promise<Sample>;
  teardown?(): Promise<void>;
}

interface Context {
  options: Options;
  work: string;
  source: Source;
  small?: Source;
  /** The `send-text` and `send-log` rows' files and the tree rows' folder, when wanted. */
  text?: TextSource;
  log?: Source;
  tree?: TreeSource;
  /** Generous per-command timeout for a transfer of `bytes`. */
  timeout(bytes: number): number;
}

function ftvArgs(port: number): string[] {
  return ["--host", HOST, "--port", String(port), "--quiet", "--json"];
}

/** A row timing one ftv client against a fresh server. */
function ftvRow(
  ctx: Context,
  id: string,
  label: string,
  plan: {
    serverDir: () => Promise<string>;
    serverFlags?: string[];
    clientArgs: (port: number) => string[];
    copy: string;
    bytes: number;
    /** Checks the copy (default: as a copy of the random file). */
    check?: (copy: string, index: number) => Promise<void>;
    /** Copies stay until the bench ends (see {@linkcode Load.keep}). */
    keepCopy?: boolean;
    /** Moves little: frees nothing set aside (see {@linkcode Load.light}). */
    light?: boolean;
    after?: () => Promise<void>;
  },
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
      const server = await startFtvServer(dir, plan.serverFlags);
      let serverUsage: Usage = {};
      let client: ClientRun;
      try {
        await releaseSetAside(!plan.light);
        client = await runFtvClient(
          ctx.work,
          plan.clientArgs(server.port),
          ctx.timeout(plan.bytes),
        );
      } finally {
        serverUsage = await server.stop();
      }
      await check(plan.copy, index);
      await discard(plan.copy, plan.keepCopy);
      await plan.after?.();
      const { bytes, wireBytes } = client.result;
      return {
        ms: client.ms,
        bytes: plan.bytes,
        ...usageFields(serverUsage, [client]),
        ...(client.result.seconds === undefined
          ? {}
          : { ftvSeconds: client.result.seconds }),
        ...(client.result.retransmittedChunks === undefined
          ? {}
          : { retransmitted: client.result.retransmittedChunks }),
        ...(bytes && wireBytes !== undefined
          ? { wireShare: wireBytes / bytes }
          : {}),
      };
    },
  };
}

async function ftvHelp(command: string): Promise<string> {
  const out = await runCommand(
    DENO,
    [...DENO_FLAGS, MOD, command, "--help"],
    60_000,
  );
  return out.stdout + out.stderr;
}

async function ftvRows(ctx: Context): Promise<Row[]> {
  const { work, source, options } = ctx;
  const rows: Row[] = [];
  const want = (id: string) => options.only.has(id);
  const sendDir = `${work}/ftv-send`;
  const getDir = `${work}/ftv-get`;
  const out = `${work}/ftv-out.bin`;
  const stored = "bench.bin";

  const sendRow = (
    id: string,
    label: string,
    extra: string[],
    load = fileLoad(source, stored),
  ) => {
    const row = ftvRow(ctx, id, label, {
      serverDir: () => freshDir(sendDir),
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
  };
  const getRow = (
    id: string,
    label: string,
    flags: string[],
    extra: string[],
  ) => {
    const row = ftvRow(ctx, id, label, {
      serverDir: () => Promise.resolve(getDir),
      serverFlags: flags,
      clientArgs: (port) => [
        "get",
        stored,
        "--out",
        out,
        ...receiverFlags,
        ...extra,
        ...ftvArgs(port),
      ],
      copy: out,
      bytes: source.size,
    });
    row.setup = () => prepareGetDir(ctx, getDir, stored);
    return row;
  };

  if (want("send")) rows.push(sendRow("send", "ftv send", []));
  if (want("send-none")) {
    rows.push(
      sendRow("send-none", "ftv send --compress none", ["--compress", "none"]),
    );
  }
  if (want("send-text")) {
    rows.push(sendRow(
      "send-text",
      `ftv send, ${formatBytes(ctx.text!.size)} ${ctx.text!.kind}`,
      [],
      fileLoad(ctx.text!, "text.txt", "text"),
    ));
  }
  if (want("send-log")) {
    rows.push(sendRow(
      "send-log",
      `ftv send, ${formatBytes(ctx.log!.size)} log text`,
      [],
      fileLoad(ctx.log!, "log.txt", "text"),
    ));
  }
  if (want("get")) rows.push(getRow("get", "ftv get", [], []));
  if (want("send-tls")) {
    rows.push(ftvRow(ctx, "send-tls", "ftv send --tls", {
      serverDir: () => freshDir(sendDir),
      serverFlags: ["--tls"],
      clientArgs: (port) => [
        "send",
        source.path,
        "--as",
        stored,
        "--tls",
        "--ca",
        `${sendDir}/.ftv/tls/ca.pem`,
        ...ftvArgs(port),
      ],
      copy: `${sendDir}/${stored}`,
      bytes: source.size,
      after: () => discard(sendDir),
    }));
  }
  if (want("client")) {
    const dir = `${work}/ftv-client`;
    rows.push(ftvRow(ctx, "client", "ftv client (round trip)", {
      serverDir: () => freshDir(dir),
      clientArgs: (port) => [
        "client",
        "--file",
        source.path,
        "--out",
        out,
        ...receiverFlags,
        ...ftvArgs(port),
      ],
      copy: out,
      bytes: 2 * source.size,
      after: () => discard(dir),
    }));
  }
  if (want("send-err")) {
    const label = `ftv send (error-rate ${ERROR_RATE})`;
    const help = await ftvHelp("send");
    if (help.includes("--simulate-errors") && help.includes("--error-rate")) {
      rows.push(sendRow("send-err", label, [
        "--simulate-errors",
        "--error-rate",
        ERROR_RATE,
        "--max-retries",
        ERROR_RETRIES,
      ]));
    } else {
      rows.push({
        id: "send-err",
        label,
        kind: "ftv",
        samples: [],
        skipped:
          "`ftv send` has no --simulate-errors/--error-rate (errors are simulated by the sender)",
        run: () => Promise.reject(new Error("skipped")),
      });
    }
  }
  if (want("get-err")) {
    rows.push(getRow("get-err", `ftv get (error-rate ${ERROR_RATE})`, [
      "--simulate-errors",
      "--error-rate",
      ERROR_RATE,
    ], ["--max-retries", ERROR_RETRIES]));
  }
  if (want("clients")) rows.push(...clientRows(ctx));
  if (want("tree")) {
    rows.push(
      sendRow("tree", `ftv send, ${treeText()}`, [], treeLoad(ctx.tree!)),
    );
  }
  if (want("tree-get")) {
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
        ...receiverFlags,
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
    rows.push(row);
  }
  return rows;
}

/**
 * Puts the source in the `get` server's folder (a hard link, so it shares the
 * page cache) and lets a server hash it once (`list`), so no timed `get`
 * pays for the digest.
 */
async function prepareGetDir(
  ctx: Context,
  dir: string,
  name: string,
  from: string = ctx.source.path,
): Promise<void> {
  if (await exists(`${dir}/${name}`)) return;
  await freshDir(dir);
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
  const server = await startFtvServer(dir);
  try {
    const list = await runCommand(DENO, [
      ...DENO_FLAGS,
      MOD,
      "list",
      ...ftvArgs(server.port),
    ], ctx.timeout(ctx.source.size));
    if (list.code !== 0) {
      throw new BenchError(`ftv list failed: ${lastLine(list.stderr)}`);
    }
  } finally {
    await server.stop();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** One client sending the small file, and N clients sending it at once. */
function clientRows(ctx: Context): Row[] {
  const { work, options } = ctx;
  const n = options.clients;
  const dir = `${work}/ftv-clients`;
  const small = () => ctx.small!;
  const sizeText = formatBytes(options.clientSize);
  const setup = async () => {
    ctx.small ??= await makeSource(`${work}/small.bin`, options.clientSize);
  };
  const one: Row = {
    id: "clients",
    label: `ftv send, 1 client (${sizeText})`,
    kind: "ftv",
    samples: [],
    setup,
    async run(index) {
      await freshDir(dir);
      const server = await startFtvServer(dir);
      let serverUsage: Usage = {};
      let client: ClientRun;
      try {
        await releaseSetAside();
        client = await runFtvClient(work, [
          "send",
          small().path,
          "--as",
          "one.bin",
          ...ftvArgs(server.port),
        ], ctx.timeout(small().size));
      } finally {
        serverUsage = await server.stop();
      }
      await checkCopy(`${dir}/one.bin`, small(), index === 0, one.label);
      await discard(dir);
      return {
        ms: client.ms,
        bytes: small().size,
        ...usageFields(serverUsage, [client]),
      };
    },
  };
  const many: Row = {
    id: "clients-n",
    label: `ftv send, ${n} clients at once (${sizeText} each)`,
    kind: "ftv",
    samples: [],
    setup,
    async run(index) {
      await freshDir(dir);
      const server = await startFtvServer(dir);
      let serverUsage: Usage = {};
      let clients: ClientRun[];
      let ms: number;
      try {
        await releaseSetAside();
        const started = performance.now();
        const settled = await Promise.allSettled(
          Array.from({ length: n }, (_, k) =>
            runFtvClient(work, [
              "send",
              small().path,
              "--as",
              `c${k}.bin`,
              ...ftvArgs(server.port),
            ], ctx.timeout(n * small().size))),
        );
        ms = performance.now() - started;
        const failed = settled.find((s) => s.status === "rejected");
        if (failed) throw (failed as PromiseRejectedResult).reason;
        clients = settled.map((s) =>
          (s as PromiseFulfilledResult<ClientRun>).value
        );
      } finally {
        serverUsage = await server.stop();
      }
      for (let k = 0; k < n; k++) {
        await checkCopy(`${dir}/c${k}.bin`, small(), index === 0, many.label);
      }
      await discard(dir);
      return {
        ms,
        bytes: n * small().size,
        ...usageFields(serverUsage, clients),
      };
    },
  };
  return [one, many];
}

// ---------------------------------------------------------------- baselines

function baselineRows(ctx: Context): Row[] {
  const rows: Row[] = [];
  const want = (id: string) => ctx.options.only.has(id);
  if (want("socat")) rows.push(socatRow(ctx));
  if (want("rsync")) rows.push(rsyncRow(ctx, "rsync", "rsync daemon", []));
  if (want("rsync-sha1")) {
    rows.push(
      rsyncRow(ctx, "rsync-sha1", "rsync daemon, sha1", [
        "--checksum-choice=sha1",
      ]),
    );
  }
  if (want("rsync-tree")) {
    rows.push(
      rsyncRow(
        ctx,
        "rsync-tree",
        `rsync -r, ${treeText()}`,
        [],
        treeLoad(ctx.tree!),
      ),
    );
  }
  if (want("scp")) rows.push(scpRow(ctx));
  return rows;
}

function skippedRow(id: string, label: string, reason: string): Row {
  return {
    id,
    label,
    kind: "baseline",
    samples: [],
    skipped: reason,
    run: () => Promise.reject(new Error("skipped")),
  };
}

function missing(tools: Record<string, string | undefined>): string[] {
  return Object.entries(tools).filter(([, path]) => !path).map(([name]) =>
    name
  );
}

/**
 * socat both ends; the sender hashes the file with `openssl dgst -sha256`
 * while sending it, the receiver tees the stream into the file and openssl.
 */
function socatRow(ctx: Context): Row {
  const label = "socat + openssl sha256";
  const tools = {
    socat: findTool("socat"),
    openssl: findTool("openssl"),
    bash: findTool("bash"),
    tee: findTool("tee"),
  };
  const absent = missing(tools);
  if (absent.length) {
    return skippedRow("socat", label, `${absent.join(", ")} not installed`);
  }
  const { work, source } = ctx;
  const out = `${work}/socat-out.bin`;
  const recvDigest = `${work}/socat-recv.sha256`;
  const sendDigest = `${work}/socat-send.sha256`;
  const b = String(SOCAT_BUFFER);
  return {
    id: "socat",
    label,
    kind: "baseline",
    samples: [],
    async run(index) {
      await discard(out);
      const port = freePort();
      const receiver = spawn(tools.bash!, [
        "-c",
        `set -o pipefail; socat -u -b ${b} TCP-LISTEN:$1,bind=${HOST},reuseaddr STDOUT | tee "$2" | openssl dgst -sha256 -r > "$3"`,
        "bash",
        String(port),
        out,
        recvDigest,
      ], { stderr: "piped" });
      const receiverErr = readAll(receiver.stderr);
      let errText = "";
      receiverErr.then((t) => errText = t);
      try {
        await waitListening(port, receiver, "socat", () => errText);
        await releaseSetAside();
        const started = performance.now();
        const sender = await runCommand(tools.bash!, [
          "-c",
          `openssl dgst -sha256 -r "$1" > "$2" & h=$!; socat -u -b ${b} "OPEN:$1,rdonly" TCP:${HOST}:$3; s=$?; wait $h || exit 1; exit $s`,
          "bash",
          source.path,
          sendDigest,
          String(port),
        ], ctx.timeout(source.size));
        const done = await within(receiver.status, ctx.timeout(source.size));
        const ms = performance.now() - started;
        if (sender.code !== 0) {
          throw new BenchError(
            `socat sender failed: ${lastLine(sender.stderr)}`,
          );
        }
        if (!done) throw new BenchError("socat receiver did not finish");
        const status = await receiver.status;
        if (!status.success) {
          throw new BenchError(
            `socat receiver failed: ${lastLine(await receiverErr)}`,
          );
        }
        for (const file of [sendDigest, recvDigest]) {
          const digest = (await Deno.readTextFile(file)).split(/\s/)[0];
          if (digest !== source.sha256) {
            throw new BenchError(`socat: openssl printed ${digest} in ${file}`);
          }
        }
        await checkCopy(out, source, index === 0, label);
        return { ms, bytes: source.size };
      } finally {
        await stopProcess(receiver, 500);
        await discard(out);
      }
    },
  };
}

/**
 * An rsync daemon on loopback, started once, a fresh destination each run;
 * it moves the random file unless told another `load` (a folder goes with
 * `-r`).
 */
function rsyncRow(
  ctx: Context,
  id: string,
  label: string,
  flags: string[],
  load = fileLoad(ctx.source, "bench.bin"),
): Row {
  const rsync = findTool("rsync");
  if (!rsync) return skippedRow(id, label, "rsync not installed");
  const { work } = ctx;
  const base = `${work}/${id}`;
  const dest = `${base}/dest`;
  let daemon: Deno.ChildProcess | undefined;
  let port = 0;
  return {
    id,
    label,
    kind: "baseline",
    ...(load.workload ? { workload: load.workload } : {}),
    samples: [],
    async setup() {
      await freshDir(dest);
      port = freePort();
      const root = await isRoot();
      await Deno.writeTextFile(
        `${base}/rsyncd.conf`,
        [
          `pid file = ${base}/rsyncd.pid`,
          "use chroot = no",
          ...(root ? ["uid = root", "gid = root"] : []),
          "[bench]",
          `path = ${dest}`,
          "read only = no",
          "",
        ].join("\n"),
      );
      daemon = spawn(rsync, [
        "--daemon",
        "--no-detach",
        `--config=${base}/rsyncd.conf`,
        `--address=${HOST}`,
        `--port=${port}`,
        `--log-file=${base}/rsyncd.log`,
      ]);
      await waitListening(
        port,
        daemon,
        "rsync daemon",
        () => readTail(`${base}/rsyncd.log`),
      );
    },
    async run(index) {
      const copy = `${dest}/${load.name}`;
      await discard(copy, load.keep);
      await releaseSetAside(!load.light);
      const result = await runCommand(rsync, [
        ...flags,
        ...(load.folder ? ["-r", `${load.path}/`] : [load.path]),
        `rsync://${HOST}:${port}/bench/${load.name}`,
      ], ctx.timeout(load.bytes));
      if (result.code !== 0) {
        throw new BenchError(`rsync failed: ${lastLine(result.stderr)}`);
      }
      await load.check(copy, index, label);
      await discard(copy, load.keep);
      return { ms: result.ms, bytes: load.bytes };
    },
    async teardown() {
      if (daemon) await stopProcess(daemon);
    },
  };
}

function readTail(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/**
 * scp with aes128-gcm against an sshd the bench starts on a free port with
 * its own host key and client key, in a temporary folder.
 */
function scpRow(ctx: Context): Row {
  const label = "scp aes128-gcm";
  const tools = {
    scp: findTool("scp"),
    ssh: findTool("ssh"),
    "ssh-keygen": findTool("ssh-keygen"),
    sshd: findTool("sshd"),
  };
  const absent = missing(tools);
  if (absent.length) {
    return skippedRow("scp", label, `${absent.join(", ")} not installed`);
  }
  const { work, source } = ctx;
  const base = `${work}/ssh`;
  const dest = `${base}/dest`;
  const clientKey = `${base}/client_key`;
  let sshd: Deno.ChildProcess | undefined;
  let port = 0;
  let user = "root";
  const clientOptions = () => [
    "-F",
    "/dev/null",
    "-i",
    clientKey,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-c",
    "aes128-gcm@openssh.com",
  ];
  return {
    id: "scp",
    label,
    kind: "baseline",
    samples: [],
    async setup() {
      await freshDir(dest);
      const idOut = await runCommand(findTool("id") ?? "id", ["-un"], 10_000);
      user = idOut.stdout.trim() || user;
      for (const key of [`${base}/host_key`, clientKey]) {
        const made = await runCommand(tools["ssh-keygen"]!, [
          "-q",
          "-t",
          "ed25519",
          "-N",
          "",
          "-C",
          "ftv-bench",
          "-f",
          key,
        ], 30_000);
        if (made.code !== 0) {
          throw new BenchError(`ssh-keygen failed: ${lastLine(made.stderr)}`);
        }
      }
      await Deno.copyFile(`${clientKey}.pub`, `${base}/authorized_keys`);
      port = freePort();
      await Deno.writeTextFile(
        `${base}/sshd_config`,
        [
          `Port ${port}`,
          `ListenAddress ${HOST}`,
          `HostKey ${base}/host_key`,
          `PidFile ${base}/sshd.pid`,
          `AuthorizedKeysFile ${base}/authorized_keys`,
          "PubkeyAuthentication yes",
          "PasswordAuthentication no",
          "KbdInteractiveAuthentication no",
          "PermitRootLogin prohibit-password",
          "UsePAM no",
          "StrictModes no",
          "Subsystem sftp internal-sftp",
          "LogLevel ERROR",
          "",
        ].join("\n"),
      );
      // sshd insists on its privilege separation folder.
      if (await isRoot()) {
        await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 })
          .catch(() => undefined);
      }
      sshd = spawn(tools.sshd!, ["-D", "-e", "-f", `${base}/sshd_config`], {
        stderr: "piped",
      });
      let errText = "";
      readAll(sshd.stderr).then((t) => errText = t, () => undefined);
      await waitListening(port, sshd, "sshd", () => errText);
      const probe = await runCommand(tools.ssh!, [
        ...clientOptions(),
        "-p",
        String(port),
        `${user}@${HOST}`,
        "true",
      ], 30_000);
      if (probe.code !== 0) {
        throw new BenchError(
          `ssh login to the bench's sshd failed: ${
            lastLine(probe.stderr + "\n" + errText)
          }`,
        );
      }
    },
    async run(index) {
      const copy = `${dest}/bench.bin`;
      await discard(copy);
      await releaseSetAside();
      const result = await runCommand(tools.scp!, [
        ...clientOptions(),
        "-q",
        "-P",
        String(port),
        source.path,
        `${user}@${HOST}:${copy}`,
      ], ctx.timeout(source.size));
      if (result.code !== 0) {
        throw new BenchError(`scp failed: ${lastLine(result.stderr)}`);
      }
      await checkCopy(copy, source, index === 0, label);
      await discard(copy);
      return { ms: result.ms, bytes: source.size };
    },
    async teardown() {
      if (sshd) await stopProcess(sshd);
    },
  };
}

// ---------------------------------------------------------------- report

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[mid]!
    : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface Summary {
  id: string;
  label: string;
  kind: "ftv" | "baseline";
  workload?: Workload;
  skipped?: string;
  runs: number;
  mbps?: { median: number; min: number; max: number };
  /** MB/s from the seconds ftv reported itself (no process start-up). */
  ftvMbps?: number;
  /** Largest peak RSS over the runs, MiB. */
  serverRssMiB?: number;
  clientRssMiB?: number;
  /** Median CPU seconds (user + system) per GiB moved, each side. */
  serverCpuPerGiB?: number;
  clientCpuPerGiB?: number;
  retransmitted?: number[];
  /** Median of wire bytes / bytes, as ftv reported them. */
  wireShare?: number;
  samples: Sample[];
}

function summarise(row: Row): Summary {
  const summary: Summary = {
    id: row.id,
    label: row.label,
    kind: row.kind,
    runs: row.samples.length,
    samples: row.samples,
  };
  if (row.workload) summary.workload = row.workload;
  if (row.skipped) summary.skipped = row.skipped;
  if (row.samples.length === 0) return summary;
  const rates = row.samples.map((s) => s.bytes / MB / (s.ms / 1000));
  summary.mbps = {
    median: median(rates),
    min: Math.min(...rates),
    max: Math.max(...rates),
  };
  const ftvRates = row.samples.filter((s) => s.ftvSeconds).map((s) =>
    s.bytes / MB / s.ftvSeconds!
  );
  if (ftvRates.length) summary.ftvMbps = median(ftvRates);
  const peak = (key: "serverRss" | "clientRss") => {
    const values = row.samples.map((s) => s[key] ?? 0);
    const max = Math.max(...values);
    return max > 0 ? max / 1024 : undefined;
  };
  const server = peak("serverRss");
  const client = peak("clientRss");
  if (server !== undefined) summary.serverRssMiB = server;
  const cpu = (key: "serverCpu" | "clientCpu") => {
    const values = row.samples.filter((s) => s[key] !== undefined).map((s) =>
      s[key]! / (s.bytes / (1024 * MiB))
    );
    return values.length ? median(values) : undefined;
  };
  const serverCpu = cpu("serverCpu");
  const clientCpu = cpu("clientCpu");
  if (serverCpu !== undefined) summary.serverCpuPerGiB = serverCpu;
  if (clientCpu !== undefined) summary.clientCpuPerGiB = clientCpu;
  if (client !== undefined) summary.clientRssMiB = client;
  if (row.samples.some((s) => s.retransmitted !== undefined)) {
    summary.retransmitted = row.samples.map((s) => s.retransmitted ?? 0);
  }
  const shares = row.samples.flatMap((s) => s.wireShare ?? []);
  if (shares.length) summary.wireShare = median(shares);
  return summary;
}

function formatBytes(bytes: number): string {
  for (const [unit, size] of [["GiB", 1024 * MiB], ["MiB", MiB]] as const) {
    if (bytes >= size && bytes % (size / 64) === 0) {
      return `${+(bytes / size).toFixed(2)} ${unit}`;
    }
  }
  return `${bytes} B`;
}

const fixed = (n: number, digits = 0) => n.toFixed(digits);

function table(rows: string[][], align: ("l" | "r")[]): string {
  const widths = rows[0]!.map((_, c) =>
    Math.max(...rows.map((r) => (r[c] ?? "").length))
  );
  return rows.map((r) =>
    r.map((cell, c) =>
      align[c] === "r" ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)
    ).join("  ").trimEnd()
  ).join("\n");
}

interface Ratio {
  label: string;
  value?: number;
  /** Printed as a percentage rather than a ratio. */
  percent?: boolean;
  note?: string;
}

/** "target <= 1.5x: met", or "MISSED". */
function targetNote(target: string, met: boolean): string {
  return `target ${target}: ${met ? "met" : "MISSED"}`;
}

function ratios(summaries: Summary[]) {
  const by = (id: string) =>
    summaries.find((s) => s.id === id && s.mbps)?.mbps?.median;
  const extra: Ratio[] = [];
  const pair = (
    label: string,
    a: string,
    b: string,
    target?: { text: string; met: (value: number) => boolean },
  ) => {
    const x = by(a);
    const y = by(b);
    if (x === undefined || y === undefined) return;
    const value = x / y;
    extra.push({
      label,
      value,
      ...(target ? { note: targetNote(target.text, target.met(value)) } : {}),
    });
  };
  pair("get / send", "get", "send");
  pair(
    `send error-rate ${ERROR_RATE} / clean send (goodput)`,
    "send-err",
    "send",
  );
  pair(`get error-rate ${ERROR_RATE} / clean get (goodput)`, "get-err", "get");
  pair("N clients aggregate / one client", "clients-n", "clients");
  pair("send --compress auto / none (throughput)", "send", "send-none", {
    text: `>= ${TARGET.autoVsNone}x`,
    met: (value) => value >= TARGET.autoVsNone,
  });
  // Same bytes both ways, so rsync's rate / ftv's is ftv's time / rsync's.
  // rsync never syncs: the target is judged only against a server that does not either.
  if (receiverFlags.includes("--no-fsync")) {
    pair("tree: ftv time / rsync -r time", "rsync-tree", "tree", {
      text: `<= ${TARGET.treeVsRsync}x`,
      met: (value) => value <= TARGET.treeVsRsync,
    });
  } else {
    pair(
      "tree: ftv time (syncing every file) / rsync -r time (never syncing); the target is judged with --no-fsync",
      "rsync-tree",
      "tree",
    );
  }
  for (
    const text of summaries.filter((s) =>
      (s.id === "send-text" || s.id === "send-log") &&
      s.wireShare !== undefined
    )
  ) {
    extra.push({
      label: `${text.label}, wire bytes / bytes`,
      value: text.wireShare!,
      percent: true,
      note: targetNote(
        `< ${TARGET.textWire * 100}%`,
        text.wireShare! < TARGET.textWire,
      ),
    });
  }
  const ftv = summaries.filter((s) => s.kind === "ftv" && s.mbps);
  const baselines = summaries.filter((s) => s.kind === "baseline" && s.mbps);
  const matrix = ftv.map((f) => ({
    id: f.id,
    label: f.label,
    versus: Object.fromEntries(
      baselines.filter((b) => b.workload === f.workload).map((
        b,
      ) => [b.id, f.mbps!.median / b.mbps!.median]),
    ),
  })).filter((m) => Object.keys(m.versus).length > 0);
  return { extra, matrix, baselines };
}

function printReport(
  header: string[],
  summaries: Summary[],
): void {
  const lines: string[] = [...header, ""];
  const body: string[][] = [[
    "row",
    "MB/s median",
    "min-max",
    "in-ftv MB/s",
    "server RSS",
    "client RSS",
    "CPU s/GiB srv+cli",
  ]];
  for (const s of summaries) {
    if (!s.mbps) continue;
    body.push([
      s.label,
      fixed(s.mbps.median),
      `${fixed(s.mbps.min)}-${fixed(s.mbps.max)}`,
      s.ftvMbps ? fixed(s.ftvMbps) : "",
      s.serverRssMiB ? `${fixed(s.serverRssMiB)} MiB` : "",
      s.clientRssMiB ? `${fixed(s.clientRssMiB)} MiB` : "",
      s.serverCpuPerGiB !== undefined && s.clientCpuPerGiB !== undefined
        ? `${fixed(s.serverCpuPerGiB, 2)}+${fixed(s.clientCpuPerGiB, 2)}`
        : "",
    ]);
  }
  lines.push(table(body, ["l", "r", "r", "r", "r", "r", "r"]));
  const { extra, matrix, baselines } = ratios(summaries);
  if (matrix.length && baselines.length) {
    lines.push("", "ftv median / baseline median:");
    const grid: string[][] = [["", ...baselines.map((b) => b.label)]];
    for (const m of matrix) {
      grid.push([
        m.label,
        ...baselines.map((b) => {
          const value = m.versus[b.id];
          return value === undefined ? "" : `${value.toFixed(2)}x`;
        }),
      ]);
    }
    lines.push(table(grid, ["l", ...baselines.map(() => "r" as const)]));
  }
  if (extra.length) {
    lines.push("");
    for (const r of extra) {
      const value = r.percent
        ? `${(r.value! * 100).toFixed(1)}%`
        : `${r.value!.toFixed(2)}x`;
      lines.push(`${r.label}: ${value}${r.note ? ` (${r.note})` : ""}`);
    }
  }
  const retrans = summaries.filter((s) => s.retransmitted);
  for (const s of retrans) {
    lines.push(
      `${s.label}: chunks retransmitted per run ${s.retransmitted!.join(", ")}`,
    );
  }
  const skipped = summaries.filter((s) => s.skipped);
  if (skipped.length) {
    lines.push("", "Skipped:");
    for (const s of skipped) lines.push(`  ${s.label}: ${s.skipped}`);
  }
  lines.push(
    "",
    "MB/s = 10^6 bytes per second of wall time, client process start to exit" +
      " (round trip counts both directions); in-ftv MB/s uses the seconds ftv" +
      " reports (after start-up). RSS = peak (VmHWM / time %M) over the runs;" +
      " for N clients, the largest client. CPU s/GiB = median user+system" +
      " seconds per GiB moved, server + client (all N clients together): less" +
      " noisy than wall time when other processes or the VM interfere.",
  );
  console.log(lines.join("\n"));
}

// ---------------------------------------------------------------- main

async function describeFtv(): Promise<string> {
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
async function prepareFtv(
  options: Options,
): Promise<{ ms: number; cpu?: number }> {
  const warm = await runCommand(
    DENO,
    [...DENO_FLAGS, MOD, "--version"],
    120_000,
  );
  if (warm.code !== 0) {
    throw new BenchError(`cannot run ${MOD}: ${lastLine(warm.stderr)}`);
  }
  if (options.noFsync) {
    if (!(await ftvHelp("server")).includes("--no-fsync")) {
      throw new BenchError("--no-fsync: this ftv has no --no-fsync option");
    }
    receiverFlags = ["--no-fsync"];
  }
  if (!TIME) {
    return await runCommand(DENO, [...DENO_FLAGS, MOD, "--version"], 60_000);
  }
  const usageFile = `${workDir}/usage-${usageFiles++}.txt`;
  const run = await runCommand(TIME, [
    "-f",
    USAGE_FORMAT,
    "-o",
    usageFile,
    DENO,
    ...DENO_FLAGS,
    MOD,
    "--version",
  ], 60_000);
  const { cpu } = await readUsage(usageFile);
  return { ms: run.ms, ...(cpu === undefined ? {} : { cpu }) };
}

async function bench(options: Options, work: string): Promise<void> {
  const log = (text: string) => {
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
  const rows = [...await ftvRows(ctx), ...baselineRows(ctx)];
  for (const row of rows) {
    if (row.skipped || !row.setup) continue;
    try {
      log(`Setting up ${row.label}...`);
      await row.setup();
    } catch (error) {
      row.skipped = `set-up failed: ${describe(error)}`;
    }
  }
  try {
    // The first big transfer after set-up runs far slower than the same one
    // later (the VM hands fresh memory to the page cache), so one run of the
    // first row warms the machine up, untimed.
    const first = rows.find((row) => !row.skipped);
    if (first) {
      log(`Warm-up (untimed): ${first.label}`);
      await first.run(0).catch(() => undefined);
    }
    for (let i = 0; i < options.runs; i++) {
      // Every other run goes backwards, so no row always follows the same
      // one: what a row leaves behind (page cache, freed memory) skews the next.
      for (const row of i % 2 ? rows.toReversed() : rows) {
        if (row.skipped) continue;
        log(`Run ${i + 1}/${options.runs}: ${row.label}`);
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
  } finally {
    for (const row of rows) {
      await row.teardown?.().catch(() => undefined);
    }
  }
  const summaries = rows.map(summarise);
  const busyAfter = await cpuBusy();
  const header = [
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
  if (options.json) {
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
        ratios: ratios(summaries),
      },
      null,
      2,
    ));
  } else {
    printReport(header, summaries);
  }
}

/** Writes the text file and the tree, for the rows that want them. */
async function makeOtherLoads(
  ctx: Context,
  log: (text: string) => void,
): Promise<void> {
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

/** `--rss-size`: one send and one get of a big file, peak RSS of each side. */
async function rssMode(options: Options, work: string): Promise<void> {
  const size = options.rssSize!;
  const log = (text: string) => {
    if (!options.json) console.error(text);
  };
  log(`Writing a ${formatBytes(size)} random file...`);
  const source = await makeSource(`${work}/source.bin`, size);
  await prepareFtv(options);
  const timeout = Math.max(300_000, size / (5 * MB) * 1000);
  const dir = await freshDir(`${work}/ftv-rss`);
  const out = `${work}/rss-out.bin`;
  const results: Record<string, unknown>[] = [];
  for (const command of ["send", "get"] as const) {
    log(`ftv ${command} of ${formatBytes(size)}...`);
    const server = await startFtvServer(dir);
    let serverUsage: Usage = {};
    let client: ClientRun;
    try {
      const args = command === "send"
        ? ["send", source.path, "--as", "big.bin"]
        : ["get", "big.bin", "--out", out, ...receiverFlags];
      client = await runFtvClient(
        work,
        [...args, ...ftvArgs(server.port)],
        timeout,
      );
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
  const rows = [["", "MB/s", "server peak RSS", "client peak RSS"]];
  for (const r of results) {
    rows.push([
      `ftv ${r.command}`,
      fixed(r.mbps as number),
      r.serverRssMiB === null ? "?" : `${fixed(r.serverRssMiB as number)} MiB`,
      r.clientRssMiB === null ? "?" : `${fixed(r.clientRssMiB as number)} MiB`,
    ]);
  }
  console.log(
    `ftv peak RSS moving a ${
      formatBytes(size)
    } file (${await describeFtv()})\n` +
      table(rows, ["l", "r", "r", "r"]),
  );
}

function describe(error: unknown): string {
  if (error instanceof BenchError) return error.message;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
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
    if (options.dir) await Deno.mkdir(options.dir, { recursive: true });
    work = await Deno.makeTempDir({
      prefix: "ftv-bench-",
      ...(options.dir ? { dir: options.dir } : {}),
    });
    workDir = work;
    setAsideDir = `${work}/set-aside`;
    await Deno.mkdir(setAsideDir);
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
