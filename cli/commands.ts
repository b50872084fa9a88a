/**
 * The commands that run something on this machine (`server`, `proxy`,
 * `hash`, `demo`), and the checks and option pieces every command shares.
 * The commands that talk to a server are in `transfers.ts`.
 *
 * @module
 */

import { EXIT } from "../base/errors.ts";
import type { Io } from "../base/io.ts";
import { COMPONENT, Logger, type LogLevel } from "../base/log.ts";
import { printable } from "../base/printable.ts";
import { runDemo } from "../demo.ts";
import { hashFile } from "../engine/digest.ts";
import { parseHostPort, startProxy } from "../faults/proxy.ts";
import { isLoopback } from "../security/auth.ts";
import {
  type ServeOptions,
  serveUntilSignal,
  type SimulateErrorsOptions,
} from "../server.ts";
import { describe, UsageError } from "./exit.ts";
import type { CommandValues } from "./options.ts";

/** `ftv server`: serves until SIGINT or SIGTERM. */
export async function runServer(
  values: CommandValues<"server">,
  positionals: string[],
): Promise<number> {
  noPositionals(positionals);
  const auth = serverAuth(values);
  for (const host of [values.host, values["http-host"] ?? values.host]) {
    if (!isLoopback(host) && auth === undefined) {
      throw new UsageError(
        `Cannot serve on ${host} without a token: set --token or FTV_TOKEN, or pass --no-auth to serve anyone who connects`,
      );
    }
  }
  await serveUntilSignal({
    host: values.host,
    port: values.port,
    dir: values.dir,
    ...optional("s3", serverS3(values)),
    chunkSize: values["chunk-size"],
    simulateErrors: simulateErrors(values),
    fsync: !values["no-fsync"],
    ...optional("auth", auth),
    ...optional("tls", serverTls(values)),
    maxConnections: values["max-connections"],
    maxConnectionsPerAddress: values["max-per-address"],
    partTtlMs: values["part-ttl"] * 1000,
    verify: values.verify,
    parity: values.parity === "off" ? false : values.parity,
    ...optional("maxFileSize", values["max-file-size"]),
    ...optional("maxTotalBytes", values["max-total"]),
    handshakeTimeoutMs: values["handshake-timeout"] * 1000,
    idleTimeoutMs: values["idle-timeout"] * 1000,
    ...optional("http", serverHttp(values)),
    log: new Logger(COMPONENT.server, { level: logLevel(values) }),
  });
  return EXIT.ok;
}

/** `--store s3://...` with `--s3-endpoint` and `--s3-lease`, or nothing. */
function serverS3(values: CommandValues<"server">): ServeOptions["s3"] {
  const endpoints = (values["s3-endpoint"] ?? "").split(",").map((url) =>
    url.trim()
  ).filter((url) => url !== "");
  if (values.store === undefined) {
    if (endpoints.length > 0) {
      throw new UsageError("--s3-endpoint needs --store s3://BUCKET");
    }
    return undefined;
  }
  if (endpoints.length === 0) {
    throw new UsageError(
      "--store needs --s3-endpoint URL (the S3 service, e.g. http://127.0.0.1:7480)",
    );
  }
  for (const url of endpoints) {
    if (!/^https?:\/\/[^/]+\/?$/.test(url)) {
      throw new UsageError(
        `--s3-endpoint needs http(s)://HOST[:PORT] URLs, not ${
          JSON.stringify(url)
        }`,
      );
    }
  }
  if (values["max-total"] !== undefined) {
    throw new UsageError(
      "--max-total counts the bytes in --dir; with --store, use the S3 service's quota",
    );
  }
  return {
    url: values.store,
    endpoints,
    leaseMs: values["s3-lease"] * 1000,
  };
}

/** `--token` (or `FTV_TOKEN`), `--no-auth`, or neither. */
function serverAuth(values: CommandValues<"server">): ServeOptions["auth"] {
  const token = tokenOf(values);
  if (token !== undefined) return { token };
  return values["no-auth"] ? "anyone" : undefined;
}

/** `--http PORT` with `--http-host` and `--http-cors`, or nothing. */
function serverHttp(values: CommandValues<"server">): ServeOptions["http"] {
  if (values.http === undefined) {
    if (
      values["http-host"] !== undefined || values["http-cors"] !== undefined
    ) {
      throw new UsageError("--http-host and --http-cors need --http PORT");
    }
    return undefined;
  }
  return {
    port: values.http,
    ...optional("host", values["http-host"]),
    ...optional("cors", values["http-cors"]),
  };
}

function serverTls(values: CommandValues<"server">): ServeOptions["tls"] {
  const { cert, key } = values;
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  if (cert !== undefined && key !== undefined) {
    return { certFile: cert, keyFile: key };
  }
  return values.tls ? true : undefined;
}

/** `ftv hash`: prints each file's SHA-256; exit 1 if one cannot be read. */
export async function runHash(
  _values: CommandValues<"hash">,
  paths: string[],
  io: Io,
): Promise<number> {
  if (paths.length === 0) throw new UsageError("hash takes at least one PATH");
  let status: number = EXIT.ok;
  for (const path of paths) {
    try {
      io.out(printable(`${await hashFile(path)}  ${path}`));
    } catch (error) {
      io.err(printable(`ftv: Cannot hash "${path}": ${describe(error)}`));
      status = EXIT.failed;
    }
  }
  return status;
}

/** `ftv demo`: the self-contained demonstration. */
export async function runDemoCommand(
  values: CommandValues<"demo">,
  positionals: string[],
  io: Io,
): Promise<number> {
  noPositionals(positionals);
  return await runDemo({
    testFileSizeKb: values["test-file-size"],
    simulateErrors: simulateErrors(values),
    chunkSize: values["chunk-size"],
    maxRetries: values["max-retries"],
    fec: values.fec,
    mode: values.mode,
    ...optional("file", values.file),
    host: values.host,
    port: values.port,
    level: logLevel(values),
  }, io);
}

/** `ftv proxy`: forwards and damages traffic until SIGINT or SIGTERM. */
export async function runProxy(
  values: CommandValues<"proxy">,
  positionals: string[],
): Promise<number> {
  noPositionals(positionals);
  const listen = address(values.listen, "listen");
  const target = address(values.target, "target");
  const log = new Logger(COMPONENT.proxy, { level: logLevel(values) });
  const proxy = await startProxy({
    listenHost: listen.host,
    listenPort: listen.port,
    targetHost: target.host,
    targetPort: target.port,
    flipRate: values["flip-rate"],
    dropRate: values["drop-rate"],
    delayMs: values.delay,
    latencyMs: values.latency,
    ...optional("cutAfterBytes", values["cut-after"]),
    ...optional("seed", values.seed),
    log,
  });
  await untilSignal();
  await proxy.close();
  log.info(`Proxy stopped: ${JSON.stringify(proxy.stats)}`);
  return EXIT.ok;
}

function address(
  raw: string | undefined,
  name: string,
): { host: string; port: number } {
  if (raw === undefined) throw new UsageError(`missing --${name} HOST:PORT`);
  try {
    return parseHostPort(raw);
  } catch (error) {
    throw new UsageError(`--${name}: ${(error as Error).message}`);
  }
}

/** Resolves at the first SIGINT or SIGTERM. */
function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
      resolve();
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  });
}

/** `--simulate-errors` with `--error-rate` and `--seed`, or false. */
export function simulateErrors(
  values: {
    "simulate-errors": boolean;
    "error-rate": number;
    seed: number | undefined;
  },
): false | SimulateErrorsOptions {
  if (!values["simulate-errors"]) return false;
  return { errorRate: values["error-rate"], ...optional("seed", values.seed) };
}

/** `--token`, else `FTV_TOKEN` when the environment may be read. */
export function tokenOf(
  values: { token: string | undefined },
): string | undefined {
  if (values.token !== undefined) return values.token;
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

/** `WARNING` with `--quiet`, else `INFO`. */
export function logLevel(values: { quiet: boolean }): LogLevel {
  return values.quiet ? "WARNING" : "INFO";
}

/** Refuses arguments a command does not take. */
export function noPositionals(positionals: string[]): void {
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument "${positionals[0]}"`);
  }
}

/** `{ [key]: value }`, or nothing when the value is undefined. */
export function optional<K extends string, V>(
  key: K,
  value: V | undefined,
): { [P in K]?: V } {
  return value === undefined ? {} : { [key]: value } as { [P in K]: V };
}
