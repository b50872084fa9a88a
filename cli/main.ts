/**
 * The `ftv` command line: parses arguments, runs a command, and maps every
 * failure to a one-line message and an exit code (0 verified, 1 transfer
 * failed, 2 usage error).
 *
 * @module
 */

import {
  ConnectionError,
  EXIT,
  exitCodeOf,
  ProtocolError,
  RemoteError,
  TransferError,
} from "../base/errors.ts";
import { parseArgs } from "node:util";
import {
  DEFAULT_MAX_RETRIES,
  FtvClient,
  get,
  roundTrip,
  send,
  type TransferResult,
} from "../client.ts";
import {
  COMPRESSION_MODES,
  type CompressionMode,
} from "../engine/compression.ts";
import { hashFile } from "../engine/digest.ts";
import { parseHostPort, startProxy } from "../faults/proxy.ts";
import type { TrustMode } from "../security/trust.ts";
import { runDemo } from "../demo.ts";
import { ErrorSimulator } from "../faults/simulator.ts";
import { Logger, type LogLevel, stderrSink } from "../base/log.ts";
import { type ProgressMode, ProgressReporter } from "./progress.ts";
import {
  type ServeOptions,
  serveUntilSignal,
  type SimulateErrorsOptions,
} from "../server.ts";
import type { TreeOptions, TreeResult, Walk } from "../client.ts";
import { VERSION } from "../base/version.ts";
import { formatBytes, parseBytes } from "../base/bytes.ts";

/** A mistake in the command line: exit code 2. */
export class UsageError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const CONNECT_HELP = `  --host HOST          server host (default: localhost)
  --port PORT          server port (default: 9999)
  --timeout SECONDS    drop a connection silent for this long (default: 30)
  --retry-delay SECS   first reconnect delay, doubling with jitter (default: 0.5)
  --limit-rate RATE    stay under RATE bytes/s, e.g. 500k, 20M (default: none)
  --compress MODE      auto, zstd, gzip or none, per chunk (default: auto)
  --progress MODE      bar, json (one event per line) or none (default: bar
                       when stdout is a terminal, else none)
  --token TOKEN        token for a server that requires one (or FTV_TOKEN)
  --tls                speak TLS 1.3; without --ca or --pin, trust the server
                       on first use and refuse if its certificate changes
  --ca FILE            trust servers whose certificate this CA signed
  --pin SHA256:HEX     trust only the server whose CA has this fingerprint
  --known-hosts FILE   where first-use trust is kept
                       (default: ~/.config/ftv/known_hosts)
  --quiet              print warnings and errors only
  --json               print one JSON result object on stdout`;

const USAGE: Record<string, string> = {
  main: `ftv ${VERSION}: file transfer with end-to-end verification

Usage: ftv <command> [options]

Commands:
  server     store received files and serve them back
  client     the round trip: upload a file, download the server's copy, verify
  send       upload files to a server
  get        download a stored file
  list       list stored files with size and SHA-256
  hash       print SHA-256 digests in sha256sum format
  demo       run the self-contained demonstration
  proxy      a TCP proxy that damages traffic, to test bad links

Run 'ftv <command> --help' for a command's options.
Exit codes: 0 verified, 1 transfer failed, 2 usage error,
3 authentication failed (wrong token, untrusted server).`,
  server: `Usage: ftv server [options]

  --host HOST          address to bind (default: localhost)
  --port PORT          port to bind, 0 for any free port (default: 9999)
  --dir DIR            folder for stored files (default: ./ftv-data)
  --chunk-size BYTES   chunk size for files sent (default: 1048576)
  --simulate-errors    lose, corrupt and reorder outgoing chunks
  --error-rate P       probability of a lost or corrupted chunk (default: 0.1)
  --seed N             seed for the error simulation
  --no-fsync           skip syncing received files to disk (faster; a power
                       loss may then lose recently finished files)
  --token TOKEN        require clients to prove this token (or FTV_TOKEN)
  --no-auth            allow a non-loopback --host without a token
  --tls                serve TLS; a CA and certificate are made on first start
                       in DIR/.ftv/tls and the CA fingerprint is printed
  --cert FILE, --key FILE   serve TLS with your own certificate and key
  --max-connections N  connections served at once (default: 64)
  --max-file-size SIZE largest file accepted, e.g. 10G (default: unlimited)
  --max-total SIZE     most bytes stored in DIR (default: unlimited)
  --handshake-timeout SECS  time a new connection has to log in (default: 10)
  --idle-timeout SECS  drop a connection silent this long (default: 60)
  --quiet              print warnings and errors only`,
  client: `Usage: ftv client --file PATH [options]

Uploads PATH, then downloads the server's chunked copy, verifying every chunk
and the whole file, and asks again for missing or damaged chunks.

  --file PATH          file to round-trip (required)
  --out PATH           where to write the copy (default: received_<name>)
  --no-fsync           skip syncing the copy to disk before renaming it
  --max-retries N      repair rounds per connection, and reconnects in a row
                       without progress, before giving up (default: ${DEFAULT_MAX_RETRIES})
${CONNECT_HELP}`,
  send: `Usage: ftv send PATH... [options]

Uploads files and folders. A folder travels as a tree of relative names
(photos/ is stored as photos/...), with empty files and folders, modes and
mtimes; its small files are pipelined over one connection.

  --as NAME            store under this name (default: the file's or folder's
                       name; one PATH only)
  --follow-symlinks    follow symbolic links inside folders (default: report
                       each one and skip it)
  --dry-run            print what would be sent (size and name of each file,
                       then a total) and send nothing
  --simulate-errors    lose and corrupt outgoing chunks (one file only), to
                       see repair at work; --error-rate P (0.1), --seed N
  --max-retries N      repair rounds per connection, and reconnects in a row
                       without progress, before giving up (default: ${DEFAULT_MAX_RETRIES})
${CONNECT_HELP}`,
  get: `Usage: ftv get NAME [options]

Downloads a stored file, or a stored folder with everything under it (one
verified get per file over one connection; modes and mtimes restored).

  --out PATH           where to write the file or folder (default: NAME's
                       last component)
  --no-fsync           skip syncing the file to disk before renaming it
  --max-retries N      repair rounds before giving up (default: ${DEFAULT_MAX_RETRIES})
  --expect-sha256 HEX  refuse the file unless it has this digest
${CONNECT_HELP}`,
  hash: `Usage: ftv hash PATH...

Prints "<sha256>  <path>" for each file, as sha256sum does (natively hashed,
several times faster than coreutils here). A path that cannot be read is
reported and the exit code is 1.`,
  list: `Usage: ftv list [options]

${CONNECT_HELP}`,
  demo: `Usage: ftv demo [options]

Creates a random file, starts a server in the background, round-trips the
file through it and prints the result.

  --test-file-size KB  size of the random test file (default: 10)
  --simulate-errors    lose, corrupt and reorder chunks on the way back
  --error-rate P       probability of a lost or corrupted chunk (default: 0.1)
  --chunk-size BYTES   chunk size (default: 1024, small so chunks show)
  --max-retries N      repair rounds before giving up (default: ${DEFAULT_MAX_RETRIES})
  --mode MODE          demo, server or client (default: demo)
  --file PATH          file for --mode client (default: a random one)
  --host HOST          server host for --mode server|client (default: localhost)
  --port PORT          server port for --mode server|client (default: 9999)
  --seed N             seed for the error simulation
  --quiet              print warnings and errors only`,
};

USAGE.proxy = `Usage: ftv proxy --listen HOST:PORT --target HOST:PORT [options]

Forwards TCP connections and damages the byte stream on the way, per
1460-byte packet, like netem: for checking ftv (or anything) on bad links.

  --listen HOST:PORT   address to listen on (port 0 picks a free one)
  --target HOST:PORT   address to forward to
  --flip-rate P        probability a packet gets one bit flipped (default: 0)
  --drop-rate P        probability a packet is dropped from the stream (default: 0)
  --delay MS           stall each forwarded read this long (default: 0)
  --cut-after BYTES    cut each connection after this many bytes (default: never)
  --seed N             seed, for reproducible damage
  --quiet              print warnings and errors only`;

type OptionSpec = Record<string, { type: "string" | "boolean" }>;

const CONNECT_OPTIONS: OptionSpec = {
  token: { type: "string" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  pin: { type: "string" },
  "known-hosts": { type: "string" },
  host: { type: "string" },
  port: { type: "string" },
  timeout: { type: "string" },
  "retry-delay": { type: "string" },
  "limit-rate": { type: "string" },
  compress: { type: "string" },
  progress: { type: "string" },
  quiet: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean" },
};

const OPTIONS: Record<string, OptionSpec> = {
  proxy: {
    listen: { type: "string" },
    target: { type: "string" },
    "flip-rate": { type: "string" },
    "drop-rate": { type: "string" },
    delay: { type: "string" },
    "cut-after": { type: "string" },
    seed: { type: "string" },
    quiet: { type: "boolean" },
    help: { type: "boolean" },
  },
  server: {
    host: { type: "string" },
    port: { type: "string" },
    dir: { type: "string" },
    "chunk-size": { type: "string" },
    "simulate-errors": { type: "boolean" },
    "error-rate": { type: "string" },
    seed: { type: "string" },
    "no-fsync": { type: "boolean" },
    token: { type: "string" },
    "no-auth": { type: "boolean" },
    tls: { type: "boolean" },
    cert: { type: "string" },
    key: { type: "string" },
    "max-connections": { type: "string" },
    "max-file-size": { type: "string" },
    "max-total": { type: "string" },
    "handshake-timeout": { type: "string" },
    "idle-timeout": { type: "string" },
    quiet: { type: "boolean" },
    help: { type: "boolean" },
  },
  client: {
    ...CONNECT_OPTIONS,
    file: { type: "string" },
    out: { type: "string" },
    "no-fsync": { type: "boolean" },
    "max-retries": { type: "string" },
  },
  send: {
    ...CONNECT_OPTIONS,
    as: { type: "string" },
    "follow-symlinks": { type: "boolean" },
    "dry-run": { type: "boolean" },
    "simulate-errors": { type: "boolean" },
    "error-rate": { type: "string" },
    seed: { type: "string" },
    "max-retries": { type: "string" },
  },
  get: {
    ...CONNECT_OPTIONS,
    out: { type: "string" },
    "no-fsync": { type: "boolean" },
    "max-retries": { type: "string" },
    "expect-sha256": { type: "string" },
  },
  list: CONNECT_OPTIONS,
  hash: { help: { type: "boolean" } },
  demo: {
    "test-file-size": { type: "string" },
    "simulate-errors": { type: "boolean" },
    "error-rate": { type: "string" },
    "chunk-size": { type: "string" },
    "max-retries": { type: "string" },
    mode: { type: "string" },
    file: { type: "string" },
    host: { type: "string" },
    port: { type: "string" },
    seed: { type: "string" },
    quiet: { type: "boolean" },
    help: { type: "boolean" },
  },
};

type Values = Record<string, string | boolean | undefined>;

/** Where a command writes its result and messages; tests capture them. */
export interface Io {
  /** Writes a line of results (standard output). */
  out(text: string): void;
  /** Writes a line of messages (standard error). */
  err(text: string): void;
}

const encoder = new TextEncoder();

/** Standard output and standard error. */
export const STDIO: Io = {
  out: (text) => Deno.stdout.writeSync(encoder.encode(text + "\n")),
  err: (text) => Deno.stderr.writeSync(encoder.encode(text + "\n")),
};

/**
 * Runs the CLI with `args` (without the program name) and resolves to the
 * exit code.
 */
export async function main(args: string[], io: Io = STDIO): Promise<number> {
  const [command, ...rest] = args;
  try {
    if (
      command === undefined || command === "help" || command === "--help" ||
      command === "-h"
    ) {
      io.out(USAGE.main!);
      return command === undefined ? EXIT.usage : EXIT.ok;
    }
    if (command === "--version") {
      io.out(`ftv ${VERSION}`);
      return EXIT.ok;
    }
    const spec = OPTIONS[command];
    if (!spec) throw new UsageError(`unknown command "${command}"`);
    const { values, positionals } = parse(rest, spec);
    if (values.help) {
      io.out(USAGE[command]!);
      return EXIT.ok;
    }
    return await run(command, values, positionals, io);
  } catch (error) {
    if (error instanceof UsageError) {
      const hint = command && OPTIONS[command] ? ` ${command}` : "";
      io.err(`ftv: ${error.message} (see 'ftv${hint} --help')`);
      return EXIT.usage;
    }
    io.err(`ftv: ${describe(error)}`);
    return exitCodeOf(error);
  }
}

function parse(args: string[], spec: OptionSpec) {
  try {
    return parseArgs({
      args,
      options: spec,
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message.split("\n")[0]!);
  }
}

/** One line saying why a command failed, without a stack trace. */
function describe(error: unknown): string {
  if (
    error instanceof TransferError || error instanceof ConnectionError ||
    error instanceof RemoteError || error instanceof ProtocolError
  ) {
    return error.message;
  }
  if (error instanceof Deno.errors.NotFound) {
    return `Cannot open file: ${(error as Error).message}`;
  }
  if (error instanceof Error) return error.message;
  return String(error);
}

async function run(
  command: string,
  values: Values,
  positionals: string[],
  io: Io,
): Promise<number> {
  const level: LogLevel = values.quiet ? "WARNING" : "INFO";
  switch (command) {
    case "server":
      noPositionals(positionals);
      return await runServer(values, level);
    case "hash":
      return await runHash(positionals, io);
    case "proxy":
      noPositionals(positionals);
      return await runProxy(values, level);
    case "demo":
      noPositionals(positionals);
      return await runDemo({
        testFileSizeKb: integer(
          values,
          "test-file-size",
          10,
          0,
          16 * 1024 * 1024,
        ),
        simulateErrors: simulateErrors(values),
        chunkSize: integer(values, "chunk-size", 1024, 512, 16 * 1024 * 1024),
        maxRetries: integer(
          values,
          "max-retries",
          DEFAULT_MAX_RETRIES,
          0,
          1000,
        ),
        mode: demoMode(values.mode),
        ...optional("file", values.file as string | undefined),
        host: stringValue(values, "host", "localhost"),
        port: integer(values, "port", 9999, 0, 65535),
        level,
      }, io);
  }
  const progress = new ProgressReporter(progressMode(values));
  const log = new Logger("FileTransferClient", {
    level: progress.mode === "bar" && !values.quiet ? "WARNING" : level,
    sink: progress.wrapSink(stderrSink),
  });
  const connect = {
    host: stringValue(values, "host", "localhost"),
    port: integer(values, "port", 9999, 1, 65535),
    timeoutMs: seconds(values, "timeout", 30) * 1000,
    ...optional("token", tokenOf(values)),
    ...optional("tls", await clientTls(values)),
    log,
  };
  const transfer = {
    ...connect,
    maxRetries: integer(values, "max-retries", DEFAULT_MAX_RETRIES, 0, 1000),
    retryDelayMs: seconds(values, "retry-delay", 0.5) * 1000,
    fsync: values["no-fsync"] !== true,
    compress: compressionMode(values),
    ...optional("limitRate", limitRate(values)),
    onProgress: progress.update,
  };
  switch (command) {
    case "client": {
      noPositionals(positionals);
      const file = values.file;
      if (typeof file !== "string") throw new UsageError("missing --file PATH");
      await mustBeFile(file);
      const result = await roundTrip(file, {
        ...transfer,
        ...optional("out", values.out as string | undefined),
      });
      report(result, values, io, log, progress);
      return EXIT.ok;
    }
    case "send": {
      if (positionals.length === 0) throw new UsageError("send needs a PATH");
      if (positionals.length > 1 && values.as !== undefined) {
        throw new UsageError("--as takes one PATH");
      }
      const path = positionals[0]!;
      if (
        positionals.length > 1 || values["dry-run"] ||
        !(await isFile(path))
      ) {
        return await sendPaths(positionals, values, transfer, io, progress);
      }
      const simulating = values["simulate-errors"] === true;
      const result = await send(path, {
        ...transfer,
        ...optional("as", values.as as string | undefined),
        ...(simulating
          ? {
            simulator: new ErrorSimulator({
              errorRate: rate(values, "error-rate", 0.1),
              ...optional("seed", optionalInteger(values, "seed")),
              log,
            }),
          }
          : {}),
      });
      report(result, values, io, log, progress);
      return EXIT.ok;
    }
    case "get": {
      if (positionals.length !== 1) throw new UsageError("get takes one NAME");
      const expected = values["expect-sha256"] as string | undefined;
      if (expected !== undefined && !/^[0-9a-fA-F]{64}$/.test(expected)) {
        throw new UsageError("--expect-sha256 needs 64 hex digits");
      }
      const name = positionals[0]!;
      const out = values.out as string | undefined;
      const result = await get(name, {
        ...transfer,
        ...optional("out", out),
        ...optional("expectSha256", expected?.toLowerCase()),
      }).catch(async (error) => {
        // Not a stored file: perhaps a stored folder.
        if (!(error instanceof RemoteError) || error.code !== "not_found") {
          throw error;
        }
        if (expected !== undefined) {
          throw new UsageError(
            `--expect-sha256 applies to a stored file, and ${
              JSON.stringify(name)
            } is none`,
          );
        }
        const { getTree } = await import("../client.ts");
        const tree = await getTree(name, {
          ...transfer,
          ...optional("out", out),
        });
        if (tree === undefined) throw error;
        return tree;
      });
      if ("entries" in result) reportTree(result, values, io, progress);
      else report(result, values, io, log, progress);
      return EXIT.ok;
    }
    case "list": {
      noPositionals(positionals);
      using client = await FtvClient.connect(connect);
      const { files, dirs } = await client.listTree();
      if (values.json) {
        io.out(JSON.stringify(dirs.length > 0 ? { files, dirs } : { files }));
      } else {
        const lines = [
          ...files.map((file) => ({
            name: file.name,
            line: `${file.sha256}  ${
              String(file.size).padStart(12)
            }  ${file.name}`,
          })),
          ...dirs.map((dir) => ({
            name: dir.name,
            line: `${"-".padEnd(64)}  ${"-".padStart(12)}  ${dir.name}/`,
          })),
        ].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
        for (const { line } of lines) io.out(line);
      }
      return EXIT.ok;
    }
  }
  throw new UsageError(`unknown command "${command}"`);
}

async function runServer(values: Values, level: LogLevel): Promise<number> {
  await serveUntilSignal({
    host: stringValue(values, "host", "localhost"),
    port: integer(values, "port", 9999, 0, 65535),
    dir: stringValue(values, "dir", "./ftv-data"),
    chunkSize: integer(
      values,
      "chunk-size",
      1024 * 1024,
      512,
      16 * 1024 * 1024,
    ),
    simulateErrors: simulateErrors(values),
    fsync: values["no-fsync"] !== true,
    ...optional("auth", serverAuth(values)),
    ...optional("tls", serverTls(values)),
    maxConnections: integer(values, "max-connections", 64, 1, 100_000),
    ...optional("maxFileSize", bytesOption(values, "max-file-size")),
    ...optional("maxTotalBytes", bytesOption(values, "max-total")),
    handshakeTimeoutMs: seconds(values, "handshake-timeout", 10) * 1000,
    idleTimeoutMs: seconds(values, "idle-timeout", 60) * 1000,
    log: new Logger("FileTransferServer", { level }),
  }).catch((error) => {
    if (error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  });
  return EXIT.ok;
}

/** `--simulate-errors` with `--error-rate` and `--seed`, or false. */
function simulateErrors(values: Values): false | SimulateErrorsOptions {
  if (values["simulate-errors"] !== true) return false;
  return {
    errorRate: rate(values, "error-rate", 0.1),
    ...optional("seed", optionalInteger(values, "seed")),
  };
}

/** `--token` (or `FTV_TOKEN`), `--no-auth`, or neither. */
function serverAuth(values: Values): ServeOptions["auth"] {
  const token = tokenOf(values);
  if (token !== undefined) return { token };
  return values["no-auth"] === true ? "anyone" : undefined;
}

/** `--token`, else `FTV_TOKEN` when the environment may be read. */
function tokenOf(values: Values): string | undefined {
  if (values.token !== undefined) return stringValue(values, "token", "");
  try {
    // Asking first avoids a permission prompt on a terminal.
    const { state } = Deno.permissions.querySync({
      name: "env",
      variable: "FTV_TOKEN",
    });
    return state === "granted"
      ? Deno.env.get("FTV_TOKEN") || undefined
      : undefined;
  } catch {
    return undefined;
  }
}

function serverTls(values: Values): ServeOptions["tls"] {
  const cert = values.cert as string | undefined;
  const key = values.key as string | undefined;
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  if (cert !== undefined && key !== undefined) {
    return { certFile: cert, keyFile: key };
  }
  return values.tls === true ? true : undefined;
}

async function clientTls(values: Values): Promise<TrustMode | undefined> {
  const ca = values.ca as string | undefined;
  const pin = values.pin as string | undefined;
  if (ca !== undefined && pin !== undefined) {
    throw new UsageError("--ca and --pin are alternatives: give one");
  }
  if (ca !== undefined) {
    try {
      return { kind: "ca", caPem: await Deno.readTextFile(ca) };
    } catch (error) {
      throw new UsageError(
        `cannot read --ca "${ca}": ${(error as Error).message}`,
      );
    }
  }
  if (pin !== undefined) {
    try {
      const { normalizeFingerprint } = await import("../security/tls.ts");
      return { kind: "pin", fingerprint: normalizeFingerprint(pin) };
    } catch (error) {
      throw new UsageError(`--pin: ${(error as Error).message}`);
    }
  }
  if (values.tls !== true) return undefined;
  const knownHosts = values["known-hosts"] as string | undefined;
  return {
    kind: "tofu",
    knownHostsPath: knownHosts ??
      (await import("../security/trust.ts")).defaultKnownHostsPath(),
  };
}

function progressMode(values: Values): ProgressMode {
  const raw = values.progress;
  if (raw === undefined) {
    return Deno.stdout.isTerminal() && !values.json ? "bar" : "none";
  }
  if (raw === "bar" || raw === "json" || raw === "none") return raw;
  throw new UsageError(`--progress must be bar, json or none, got "${raw}"`);
}

function compressionMode(values: Values): CompressionMode {
  const raw = values.compress ?? "auto";
  const mode = COMPRESSION_MODES.find((m) => m === raw);
  if (!mode) {
    throw new UsageError(
      `--compress must be one of ${COMPRESSION_MODES.join(", ")}, got "${raw}"`,
    );
  }
  return mode;
}

function bytesOption(values: Values, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  try {
    return parseBytes(String(raw));
  } catch (error) {
    throw new UsageError(`--${name}: ${(error as Error).message}`);
  }
}

async function runHash(paths: string[], io: Io): Promise<number> {
  if (paths.length === 0) throw new UsageError("hash takes at least one PATH");
  let status: number = EXIT.ok;
  for (const path of paths) {
    try {
      io.out(`${await hashFile(path)}  ${path}`);
    } catch (error) {
      io.err(`ftv: Cannot hash "${path}": ${describe(error)}`);
      status = EXIT.failed;
    }
  }
  return status;
}

async function runProxy(values: Values, level: LogLevel): Promise<number> {
  const listen = address(values, "listen");
  const target = address(values, "target");
  const cutAfter = optionalInteger(values, "cut-after");
  const log = new Logger("FaultProxy", { level });
  const proxy = await startProxy({
    listenHost: listen.host,
    listenPort: listen.port,
    targetHost: target.host,
    targetPort: target.port,
    flipRate: rate(values, "flip-rate", 0),
    dropRate: rate(values, "drop-rate", 0),
    delayMs: integer(values, "delay", 0, 0, 600_000),
    ...optional("cutAfterBytes", cutAfter),
    ...optional("seed", optionalInteger(values, "seed")),
    log,
  });
  const stopped = new Promise<void>((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
  await stopped;
  await proxy.close();
  log.info(`Proxy stopped: ${JSON.stringify(proxy.stats)}`);
  return EXIT.ok;
}

function address(values: Values, name: string): { host: string; port: number } {
  const raw = values[name];
  if (typeof raw !== "string") {
    throw new UsageError(`missing --${name} HOST:PORT`);
  }
  try {
    return parseHostPort(raw);
  } catch (error) {
    throw new UsageError(`--${name}: ${(error as Error).message}`);
  }
}

function report(
  result: TransferResult,
  values: Values,
  io: Io,
  log: Logger,
  progress: ProgressReporter,
): void {
  progress.finish(
    `${result.name}: ${formatBytes(result.bytes)} in ${
      result.seconds.toFixed(2)
    } s (${formatBytes(result.bytes / Math.max(result.seconds, 0.001))}/s), ${
      formatBytes(result.wireBytes)
    } on the wire, ${result.retransmittedChunks} chunk(s) resent, SHA-256 verified`,
  );
  // With JSON progress every stdout line is JSON, the result included.
  if (values.json || progress.mode === "json") {
    io.out(JSON.stringify({
      name: result.name,
      path: result.path,
      sha256: result.sha256,
      bytes: result.bytes,
      chunks: result.chunks,
      retransmittedChunks: result.retransmittedChunks,
      attempts: result.attempts,
      resumedChunks: result.resumedChunks,
      resumedBytes: result.resumedBytes,
      wireBytes: result.wireBytes,
      connections: result.connections ?? 1,
      seconds: result.seconds,
    }));
    return;
  }
  log.info(
    `Transfer Successful! Time taken: ${result.seconds.toFixed(2)} seconds`,
  );
  io.out(`${result.sha256}  ${result.path}`);
}

/** `send` of folders, several paths, or `--dry-run`: see `tree.ts`. */
async function sendPaths(
  paths: string[],
  values: Values,
  transfer: TreeOptions,
  io: Io,
  progress: ProgressReporter,
): Promise<number> {
  for (const path of paths) {
    try {
      await Deno.stat(path);
    } catch (error) {
      throw new UsageError(
        `cannot read "${path}": ${
          error instanceof Deno.errors.NotFound
            ? "no such file or folder"
            : (error as Error).message
        }`,
      );
    }
  }
  const { sendTree, walkTree } = await import("../client.ts");
  const walkOptions = {
    ...optional("as", values.as as string | undefined),
    followSymlinks: values["follow-symlinks"] === true,
    ...optional("log", transfer.log),
  };
  const usage = (error: unknown) => {
    throw error instanceof TypeError ? new UsageError(error.message) : error;
  };
  if (!values["dry-run"]) {
    const sent = await sendTree(paths, { ...transfer, ...walkOptions })
      .catch(usage);
    reportTree(sent, values, io, progress);
    return EXIT.ok;
  }
  let walk: Walk;
  try {
    walk = walkTree(paths, walkOptions);
  } catch (error) {
    return usage(error);
  }
  const files = walk.entries.filter((entry) => entry.kind === "file");
  const bytes = files.reduce((sum, file) => sum + file.size, 0);
  const dirs = walk.entries.length - files.length;
  if (values.json) {
    io.out(JSON.stringify({
      dryRun: true,
      files: files.length,
      dirs,
      bytes,
      skippedLinks: walk.skippedLinks,
      entries: files.map((file) => ({ name: file.name, bytes: file.size })),
    }));
  } else {
    for (const file of files) {
      io.out(`${String(file.size).padStart(12)}  ${file.name}`);
    }
    io.out(
      `${files.length} file(s), ${bytes} bytes (${
        formatBytes(bytes)
      }), ${dirs} folder(s): dry run, nothing sent`,
    );
  }
  return walk.problems.length > 0 ? EXIT.failed : EXIT.ok;
}

function reportTree(
  result: TreeResult,
  values: Values,
  io: Io,
  progress: ProgressReporter,
): void {
  progress.finish(
    `${result.name}: ${result.files} file(s), ${formatBytes(result.bytes)} in ${
      result.seconds.toFixed(2)
    } s, ${
      formatBytes(result.wireBytes)
    } on the wire, every file SHA-256 verified`,
  );
  if (values.json || progress.mode === "json") {
    io.out(JSON.stringify(result));
    return;
  }
  io.out(
    `${result.files} file(s), ${result.dirs} folder(s), ${result.bytes} bytes verified: ${result.path}`,
  );
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function mustBeFile(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new UsageError(`cannot read "${path}": no such file`);
    }
    if (error instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(`cannot read "${path}": permission denied`);
    }
    throw error;
  }
  if (!info.isFile) throw new UsageError(`cannot send "${path}": not a file`);
}

function noPositionals(positionals: string[]): void {
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`);
  }
}

function stringValue(values: Values, name: string, fallback: string): string {
  const value = values[name];
  if (value === undefined) return fallback;
  if (typeof value !== "string" || value === "") {
    throw new UsageError(`--${name} needs a value`);
  }
  return value;
}

function optionalInteger(values: Values, name: string): number | undefined {
  return values[name] === undefined
    ? undefined
    : integer(values, name, 0, 0, 2 ** 32 - 1);
}

function integer(
  values: Values,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (
    typeof raw !== "string" || !/^\d+$/.test(raw) || value < min || value > max
  ) {
    throw new UsageError(
      `--${name} must be a whole number from ${min} to ${max}, got "${raw}"`,
    );
  }
  return value;
}

function seconds(values: Values, name: string, fallback: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (
    typeof raw !== "string" || raw.trim() === "" ||
    !(value > 0 && value <= 86400)
  ) {
    throw new UsageError(
      `--${name} must be a number of seconds from 0 to 86400, got "${raw}"`,
    );
  }
  return value;
}

function limitRate(values: Values): number | undefined {
  const raw = values["limit-rate"];
  if (raw === undefined) return undefined;
  try {
    return parseBytes(String(raw));
  } catch (error) {
    throw new UsageError(`--limit-rate: ${(error as Error).message}`);
  }
}

function rate(values: Values, name: string, fallback: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (
    typeof raw !== "string" || raw.trim() === "" || !(value >= 0 && value <= 1)
  ) {
    throw new UsageError(
      `--${name} must be a number from 0 to 1, got "${raw}"`,
    );
  }
  return value;
}

function demoMode(raw: unknown): "demo" | "server" | "client" {
  if (raw === undefined) return "demo";
  if (raw === "demo" || raw === "server" || raw === "client") return raw;
  throw new UsageError(`--mode must be demo, server or client, got "${raw}"`);
}

/** `{ [key]: value }`, or nothing when the value is undefined. */
function optional<K extends string, V>(
  key: K,
  value: V | undefined,
): { [P in K]?: V } {
  return value === undefined ? {} : { [key]: value } as { [P in K]: V };
}
