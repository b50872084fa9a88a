/**
 * The commands that talk to a server: `client` (the round trip), `send`,
 * `get` and `list`. Each checks its own usage (paths, names, trust flags)
 * before the library is called, so what the library throws is never taken
 * for a usage error.
 *
 * @module
 */

import { ERROR_CODE, EXIT, RemoteError } from "../base/errors.ts";
import type { Io } from "../base/io.ts";
import { COMPONENT, Logger, stderrSink } from "../base/log.ts";
import { basename, pathKind, withoutTrailingSlashes } from "../base/paths.ts";
import {
  type ClientOptions,
  FtvClient,
  get,
  roundTrip,
  send,
  type ServerAddress,
  type TransferResult,
  type TreeResult,
} from "../client.ts";
import type { FecMode } from "../engine/fec.ts";
import { ErrorSimulator } from "../faults/simulator.ts";
import { pathRefusal } from "../protocol/names.ts";
import { rootsProblem } from "../client/walk.ts";
import type { TrustMode } from "../security/trust.ts";
import {
  logLevel,
  noPositionals,
  optional,
  simulateErrors,
  tokenOf,
} from "./commands.ts";
import { UsageError } from "./exit.ts";
import { interruptible } from "./interrupt.ts";
import type { Values } from "./flags.ts";
import type { CommandValues, CONNECT } from "./options.ts";
import { type ProgressMode, ProgressReporter } from "./progress.ts";
import {
  reportDryRun,
  reportFile,
  reportListing,
  type ReportTo,
  reportTree,
} from "./report.ts";

/** The values of the flags every command talking to a server takes. */
type ConnectValues = Values<typeof CONNECT>;

/** A command talking to a server: how it connects, logs and shows progress. */
interface Session {
  /** Host, port, timeout, token, trust and log. */
  connect: ClientOptions;
  /** The client's logger, quiet while a progress bar is drawn. */
  log: Logger;
  /** Where the result goes. */
  to: ReportTo;
}

async function sessionOf(
  values: ConnectValues,
  io: Io,
): Promise<Session> {
  const progress = new ProgressReporter(progressMode(values));
  const log = new Logger(COMPONENT.client, {
    level: progress.mode === "bar" && !values.quiet
      ? "WARNING"
      : logLevel(values),
    sink: progress.wrapSink(stderrSink),
  });
  const servers = serversOf(values.host, values.port);
  const connect = {
    ...servers[0]!,
    ...(servers.length > 1 ? { servers } : {}),
    timeoutMs: values.timeout * 1000,
    ...optional("token", tokenOf(values)),
    ...optional("tls", await clientTls(values)),
    log,
  };
  return { connect, log, to: { io, json: values.json, progress } };
}

/** Each `--host` as a host and port (`--port` where it names none). */
export function serversOf(
  hosts: readonly string[],
  port: number,
): ServerAddress[] {
  return hosts.map((text) => {
    const match = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ??
      /^([^:]+):(\d+)$/.exec(text) ?? [text, text, undefined];
    const given = match[2] === undefined ? port : Number(match[2]);
    if (!Number.isInteger(given) || given < 1 || given > 65535) {
      throw new UsageError(`--host ${JSON.stringify(text)}: no such port`);
    }
    return { host: match[1]!, port: given };
  });
}

/** The options of a transfer: the connection, retries, pacing and progress. */
function transferOf(
  values: ConnectValues & {
    "max-retries": number;
    "no-fsync"?: boolean;
    fec: FecMode;
  },
  session: Session,
) {
  return {
    ...session.connect,
    maxRetries: values["max-retries"],
    retryDelayMs: values["retry-delay"] * 1000,
    fsync: values["no-fsync"] !== true,
    compress: values.compress,
    fec: values.fec,
    ...optional("limitRate", values["limit-rate"]),
    onProgress: session.to.progress.update,
  };
}

function progressMode(values: ConnectValues): ProgressMode {
  if (values.progress !== undefined) return values.progress;
  return Deno.stdout.isTerminal() && !values.json ? "bar" : "none";
}

async function clientTls(
  values: ConnectValues,
): Promise<TrustMode | undefined> {
  const { ca, pin } = values;
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
    const { normalizeFingerprint } = await import("../security/tls.ts");
    try {
      return { kind: "pin", fingerprint: normalizeFingerprint(pin) };
    } catch (error) {
      throw new UsageError(`--pin: ${(error as Error).message}`);
    }
  }
  if (!values.tls) return undefined;
  return {
    kind: "tofu",
    knownHostsPath: values["known-hosts"] ??
      (await import("../security/trust.ts")).defaultKnownHostsPath(),
  };
}

/** `ftv client`: uploads a file and downloads the server's copy. */
export async function runClient(
  values: CommandValues<"client">,
  positionals: string[],
  io: Io,
): Promise<number> {
  noPositionals(positionals);
  const session = await sessionOf(values, io);
  if (values.file === undefined) throw new UsageError("missing --file PATH");
  await mustBeFile(values.file);
  const file = values.file;
  const result = await interruptible(
    session.to.progress,
    file,
    (signal) =>
      roundTrip(file, {
        ...transferOf(values, session),
        ...optional("out", values.out),
        signal,
      }),
  );
  reportFile(result, session.to, session.log);
  return EXIT.ok;
}

/** `ftv send`: one file, or files and folders as a tree. */
export async function runSend(
  values: CommandValues<"send">,
  paths: string[],
  io: Io,
): Promise<number> {
  if (paths.length === 0) throw new UsageError("send needs a PATH");
  if (paths.length > 1 && values.as !== undefined) {
    throw new UsageError("--as takes one PATH");
  }
  const session = await sessionOf(values, io);
  const path = paths[0]!;
  if (
    paths.length > 1 || values["dry-run"] || await pathKind(path) !== "file"
  ) {
    return await sendPaths(paths, values, session);
  }
  const name = values.as ?? basename(path);
  const refused = pathRefusal(name);
  if (refused) {
    throw new UsageError(
      `Cannot send ${path} as ${JSON.stringify(name)}: ${refused.reason}`,
    );
  }
  const simulate = simulateErrors(values);
  const result = await interruptible(
    session.to.progress,
    path,
    (signal) =>
      send(path, {
        ...transferOf(values, session),
        ...optional("as", values.as),
        ...(simulate
          ? { simulator: new ErrorSimulator({ ...simulate, log: session.log }) }
          : {}),
        signal,
      }),
  );
  reportFile(result, session.to, session.log);
  return EXIT.ok;
}

/** `send` of folders, several paths, or `--dry-run`: see `client/send_tree.ts`. */
async function sendPaths(
  paths: string[],
  values: CommandValues<"send">,
  session: Session,
): Promise<number> {
  for (const path of paths) await realPath(path);
  const problem = rootsProblem(paths, values.as);
  if (problem) throw new UsageError(problem);
  const { sendTree, walkTree } = await import("../client.ts");
  const walkOptions = {
    ...optional("as", values.as),
    followSymlinks: values["follow-symlinks"],
    log: session.log,
  };
  if (!values["dry-run"]) {
    const transfer = transferOf(values, session);
    const result = await interruptible(
      session.to.progress,
      paths.join(", "),
      (signal) => sendTree(paths, { ...transfer, ...walkOptions, signal }),
    );
    reportTree(result, session.to);
    return EXIT.ok;
  }
  const walk = walkTree(paths, walkOptions);
  reportDryRun(walk, session.to.io, values.json);
  return walk.problems.length > 0 ? EXIT.failed : EXIT.ok;
}

/** The real path of a PATH given to send, or a usage error saying why not. */
async function realPath(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
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

/** `ftv get`: a stored file, or else a stored folder. */
export async function runGet(
  values: CommandValues<"get">,
  positionals: string[],
  io: Io,
): Promise<number> {
  if (positionals.length !== 1) throw new UsageError("get takes one NAME");
  const session = await sessionOf(values, io);
  const name = withoutTrailingSlashes(positionals[0]!);
  const result = await interruptible(
    session.to.progress,
    name,
    (signal) => getFileOrTree(name, values, session, signal),
  );
  if ("entries" in result) reportTree(result, session.to);
  else reportFile(result, session.to, session.log);
  return EXIT.ok;
}

/**
 * The stored file `name`, or else the stored folder. An `--out` that is a
 * folder receives it as `OUT/NAME`, as `cp` does (for a folder, unless
 * `OUT` is the copy a stopped get began: see `TreeOptions.intoFolder`).
 */
async function getFileOrTree(
  name: string,
  values: CommandValues<"get">,
  session: Session,
  signal: AbortSignal,
): Promise<TransferResult | TreeResult> {
  const expected = values["expect-sha256"]?.toLowerCase();
  const { out } = values;
  const transfer = { ...transferOf(values, session), signal };
  try {
    return await get(name, {
      ...transfer,
      ...optional(
        "out",
        out !== undefined && await pathKind(out) === "folder"
          ? `${out}/${basename(name)}`
          : out,
      ),
      ...optional("expectSha256", expected),
    });
  } catch (error) {
    if (!(error instanceof RemoteError) || error.code !== ERROR_CODE.notFound) {
      throw error;
    }
    // Not a stored file: perhaps a stored folder (with no digest to expect).
    const missing = new RemoteError(
      error.code,
      `Cannot get ${JSON.stringify(name)}: no such file ${
        expected === undefined ? "or folder " : ""
      }on the server`,
      { cause: error },
    );
    if (expected !== undefined) throw missing;
    const { getTree } = await import("../client.ts");
    const tree = await getTree(name, {
      ...transfer,
      ...optional("out", out),
      intoFolder: true,
    });
    if (tree === undefined) throw missing;
    return tree;
  }
}

/** `ftv list`: the stored files and folders. */
export async function runList(
  values: CommandValues<"list">,
  positionals: string[],
  io: Io,
): Promise<number> {
  noPositionals(positionals);
  const session = await sessionOf(values, io);
  using client = await FtvClient.connect(session.connect);
  reportListing(await client.listTree(), io, values.json);
  return EXIT.ok;
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
