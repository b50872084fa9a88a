/**
 * Every flag of the `ftv` command line, each declared once (kind, default,
 * help, range or choices), gathered into shared groups and then into
 * commands. The parser spec, the help text and the checked values all come
 * from here (see `flags.ts`).
 *
 * @module
 */

import { DEFAULT_MAX_RETRIES } from "../client.ts";
import { DEMO_CHUNK_SIZE, DEMO_FILE_KB } from "../demo.ts";
import { COMPRESSION_MODES } from "../engine/compression.ts";
import {
  DEFAULT_CHUNK_SIZE,
  MAX_CHUNK_BYTES,
  MIN_CHUNK_BYTES,
} from "../engine/chunks.ts";
import { VERSION } from "../base/version.ts";
import {
  boolean,
  bytes,
  choice,
  flagHelp,
  type Flags,
  integer,
  list,
  orList,
  rate,
  seconds,
  shape,
  string,
  type Values,
} from "./flags.ts";
import { DEFAULT_PORT } from "../protocol.ts";
import { DEFAULT_PARITY } from "../server.ts";

/** The host a server binds and a client dials unless told otherwise. */
const DEFAULT_HOST = "localhost";
/** Highest port number. */
const MAX_PORT = 65535;
/** A seed is a 32-bit unsigned integer. */
const SEED = { arg: "N", min: 0, max: 2 ** 32 - 1 } as const;

const quiet = boolean({ help: "print warnings and errors only" });
const maxRetries = integer({
  arg: "N",
  help:
    "repair rounds per connection, and reconnects in a row without progress, before giving up",
  min: 0,
  max: 1000,
  default: DEFAULT_MAX_RETRIES,
});
const noFsyncDownload = boolean({
  help: "skip syncing the file to disk before renaming it",
});

/** Where the server is and how long to wait for it. */
const ADDRESS = {
  host: list({
    arg: "HOST[:PORT]",
    help:
      "server host; several servers sharing one store (comma-separated or --host again) are used in turn, the next one when one fails",
    default: DEFAULT_HOST,
  }),
  port: integer({
    arg: "PORT",
    help: "server port, where a --host names none",
    min: 1,
    max: MAX_PORT,
    default: DEFAULT_PORT,
  }),
  timeout: seconds({
    arg: "SECONDS",
    help: "drop a connection silent for this long",
    default: 30,
  }),
} as const;

/** How a transfer paces itself, squeezes chunks and shows progress. */
const PACING = {
  "retry-delay": seconds({
    arg: "SECS",
    help: "first reconnect delay, doubling with jitter",
    default: 0.5,
  }),
  "limit-rate": bytes({
    arg: "RATE",
    help: "stay under RATE bytes/s, e.g. 500k, 20M",
    shown: "none",
  }),
  compress: choice({
    arg: "MODE",
    help: `${orList(COMPRESSION_MODES)}, per chunk`,
    choices: COMPRESSION_MODES,
    default: "auto",
  }),
  progress: choice({
    arg: "MODE",
    help: "bar, json (one event per line) or none",
    choices: ["bar", "json", "none"] as const,
    shown: "bar when stdout is a terminal, else none",
  }),
} as const;

/** Who the client is, and which servers it trusts. */
const TRUST = {
  token: string({
    arg: "TOKEN",
    help: "token for a server that requires one (or FTV_TOKEN)",
  }),
  tls: boolean({
    help:
      "speak TLS 1.3; without --ca or --pin, trust the server on first use and refuse if its certificate changes",
  }),
  ca: string({
    arg: "FILE",
    help: "trust servers whose certificate this CA signed",
  }),
  pin: string({
    arg: "SHA256:HEX",
    help: "trust only the server whose CA has this fingerprint",
  }),
  "known-hosts": string({
    arg: "FILE",
    help: "where first-use trust is kept",
    shown: "~/.config/ftv/known_hosts",
  }),
} as const;

/** What a command that talks to a server prints. */
const OUTPUT = {
  quiet,
  json: boolean({ help: "print one JSON result object on stdout" }),
} as const;

/** The flags of every command that talks to a server. */
export const CONNECT = { ...ADDRESS, ...PACING, ...TRUST, ...OUTPUT } as const;

/** How chunks are damaged on purpose, after `--simulate-errors`. */
const SIMULATION = {
  "error-rate": rate({
    arg: "P",
    help: "probability of a lost or corrupted chunk",
    default: 0.1,
  }),
  seed: integer({ ...SEED, help: "seed for the error simulation" }),
} as const;

const SERVER = {
  host: string({ arg: "HOST", help: "address to bind", default: DEFAULT_HOST }),
  port: integer({
    arg: "PORT",
    help: "port to bind, 0 for any free port",
    min: 0,
    max: MAX_PORT,
    default: DEFAULT_PORT,
  }),
  dir: string({
    arg: "DIR",
    help:
      "folder for stored files (with --store: only the server's own files, such as TLS material)",
    default: "./ftv-data",
  }),
  store: string({
    arg: "s3://BUCKET[/PREFIX]",
    help:
      "keep files in an S3 bucket instead (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, region from AWS_REGION); several servers may share it",
    shown: "--dir",
    pattern: {
      regex: /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/,
      needs: "s3://BUCKET or s3://BUCKET/PREFIX",
    },
  }),
  "s3-endpoint": string({
    arg: "URL[,URL...]",
    help:
      "the S3 service, path-style (e.g. http://127.0.0.1:7480); several gateways of one service are tried in turn",
  }),
  "s3-lease": seconds({
    arg: "SECS",
    help:
      "how long a server holds an S3 upload without renewing: a server that dies blocks its uploads this long",
    default: 10,
  }),
  "chunk-size": integer({
    arg: "BYTES",
    help: "chunk size for files sent",
    min: MIN_CHUNK_BYTES,
    max: MAX_CHUNK_BYTES,
    default: DEFAULT_CHUNK_SIZE,
  }),
  "simulate-errors": boolean({
    help: "lose, corrupt and reorder outgoing chunks",
  }),
  ...SIMULATION,
  "no-fsync": boolean({
    help:
      "skip syncing received files to disk (faster; a power loss may then lose recently finished files)",
  }),
  token: string({
    arg: "TOKEN",
    help: "require clients to prove this token (or FTV_TOKEN)",
  }),
  "no-auth": boolean({ help: "allow a non-loopback --host without a token" }),
  tls: boolean({
    help:
      "serve TLS; a CA and certificate are made on first start in DIR/.ftv/tls and the CA fingerprint is printed",
  }),
  cert: string({
    arg: "FILE",
    help: "serve TLS with your own certificate (and --key)",
  }),
  key: string({ arg: "FILE", help: "the private key of --cert" }),
  "max-connections": integer({
    arg: "N",
    help: "connections served at once",
    min: 1,
    max: 100_000,
    default: 64,
  }),
  "max-per-address": integer({
    arg: "N",
    help:
      "connections one address may hold at once (idle ones that have not said hello yet are dropped first)",
    min: 1,
    max: 100_000,
    default: 16,
  }),
  "max-file-size": bytes({
    arg: "SIZE",
    help: "largest file accepted, e.g. 10G",
    shown: "unlimited",
  }),
  "max-total": bytes({
    arg: "SIZE",
    help: "most bytes stored in DIR",
    shown: "unlimited",
  }),
  "part-ttl": seconds({
    arg: "SECS",
    help:
      "remove part files of uploads abandoned for this long (they count towards --max-total until then)",
    default: 86400,
  }),
  parity: shape({
    arg: "K+M",
    help:
      "keep Reed-Solomon parity beside each stored file: groups of K chunks with M parity shards, so up to M rotted chunks per group are rebuilt (M/K more disk), or off",
    words: ["off"],
    default: DEFAULT_PARITY,
    shown: `${DEFAULT_PARITY.k}+${DEFAULT_PARITY.m}`,
  }),
  verify: boolean({
    help:
      "re-hash every stored file in the background at start, report files whose bytes changed, and keep serving",
  }),
  "handshake-timeout": seconds({
    arg: "SECS",
    help: "time a new connection has to log in",
    default: 10,
  }),
  "idle-timeout": seconds({
    arg: "SECS",
    help: "drop a connection silent this long",
    default: 60,
  }),
  http: integer({
    arg: "PORT",
    help:
      "also serve HTTP (HTTPS with --tls) on this port, 0 for any free port: downloads, PUT, tus and IETF resumable uploads",
    min: 0,
    max: MAX_PORT,
    shown: "off",
  }),
  "http-host": string({
    arg: "HOST",
    help: "address the HTTP port binds",
    shown: "--host",
  }),
  "http-cors": string({
    arg: "ORIGIN",
    help: "let browser pages from ORIGIN (or *) call the HTTP port",
    shown: "off",
  }),
  quiet,
} as const;

/** Parity on the way (forward error correction), for send, get, client and demo. */
const fec = shape({
  arg: "MODE",
  help:
    "parity on the way, so lost or damaged chunks are rebuilt without a round trip: off, auto (added once loss is seen, sized to it) or K+M (groups of K chunks with M parity frames)",
  words: ["off", "auto"],
  default: "off",
});

const CLIENT = {
  file: string({ arg: "PATH", help: "file to round-trip (required)" }),
  out: string({
    arg: "PATH",
    help: "where to write the copy",
    shown: "received_<name>",
  }),
  "no-fsync": noFsyncDownload,
  "max-retries": maxRetries,
  fec,
  ...CONNECT,
} as const;

const SEND = {
  as: string({
    arg: "NAME",
    help: "store under this name",
    shown: "the file's or folder's name; one PATH only",
  }),
  "follow-symlinks": boolean({
    help: "follow symbolic links inside folders",
    shown: "report each one and skip it",
  }),
  "dry-run": boolean({
    help:
      "print what would be sent (size and name of each file, then a total) and send nothing",
  }),
  "simulate-errors": boolean({
    help:
      "lose and corrupt outgoing chunks (one file only), to see repair at work",
  }),
  ...SIMULATION,
  "max-retries": maxRetries,
  fec,
  ...CONNECT,
} as const;

const GET = {
  out: string({
    arg: "PATH",
    help: "where to write the file or folder",
    shown: "NAME's last component",
  }),
  "no-fsync": noFsyncDownload,
  "max-retries": maxRetries,
  "expect-sha256": string({
    arg: "HEX",
    help: "refuse the file unless it has this digest",
    pattern: { regex: /^[0-9a-fA-F]{64}$/, needs: "64 hex digits" },
  }),
  fec,
  ...CONNECT,
} as const;

const DEMO_MODES = ["demo", "server", "client"] as const;

const DEMO = {
  "test-file-size": integer({
    arg: "KB",
    help: "size of the random test file",
    min: 0,
    max: 16 * 1024 * 1024,
    default: DEMO_FILE_KB,
  }),
  "simulate-errors": boolean({
    help: "lose, corrupt and reorder chunks on the way back",
  }),
  ...SIMULATION,
  "chunk-size": integer({
    arg: "BYTES",
    help: "chunk size",
    min: MIN_CHUNK_BYTES,
    max: MAX_CHUNK_BYTES,
    default: DEMO_CHUNK_SIZE,
    shown: `${DEMO_CHUNK_SIZE}, small so chunks show`,
  }),
  "max-retries": maxRetries,
  fec,
  mode: choice({
    arg: "MODE",
    help: orList(DEMO_MODES),
    choices: DEMO_MODES,
    default: "demo",
  }),
  file: string({
    arg: "PATH",
    help: "file for --mode client",
    shown: "a random one",
  }),
  host: string({
    arg: "HOST",
    help: "server host for --mode server|client",
    default: DEFAULT_HOST,
  }),
  port: integer({
    arg: "PORT",
    help: "server port for --mode server|client",
    min: 0,
    max: MAX_PORT,
    default: DEFAULT_PORT,
  }),
  quiet,
} as const;

const PROXY = {
  listen: string({
    arg: "HOST:PORT",
    help: "address to listen on (port 0 picks a free one)",
  }),
  target: string({ arg: "HOST:PORT", help: "address to forward to" }),
  "flip-rate": rate({
    arg: "P",
    help: "probability a packet gets one bit flipped",
    default: 0,
  }),
  "drop-rate": rate({
    arg: "P",
    help: "probability a packet is dropped from the stream",
    default: 0,
  }),
  delay: integer({
    arg: "MS",
    help: "stall each forwarded read this long",
    min: 0,
    max: 600_000,
    default: 0,
  }),
  latency: integer({
    arg: "MS",
    help:
      "delay every byte this long, each way, while reading goes on (a long link)",
    min: 0,
    max: 600_000,
    default: 0,
  }),
  "cut-after": integer({
    arg: "BYTES",
    help: "cut each connection after this many bytes",
    min: 0,
    max: SEED.max,
    shown: "never",
  }),
  seed: integer({ ...SEED, help: "seed, for reproducible damage" }),
  quiet,
} as const;

/** A command: what the main help says of it, its usage and its flags. */
export interface Command<F extends Flags = Flags> {
  /** One line for the list of commands. */
  readonly summary: string;
  /** What follows `ftv ` on its usage line. */
  readonly usage: string;
  /** A paragraph saying what it does, when the summary is not enough. */
  readonly about?: string;
  /** Its flags, in help order. */
  readonly flags: F;
}

/** Every command, in the order the main help lists them. */
export const COMMANDS = {
  server: {
    summary: "store received files and serve them back",
    usage: "server [options]",
    flags: SERVER,
  },
  client: {
    summary:
      "the round trip: upload a file, download the server's copy, verify",
    usage: "client --file PATH [options]",
    about:
      `Uploads PATH, then downloads the server's chunked copy, verifying every chunk
and the whole file, and asks again for missing or damaged chunks.`,
    flags: CLIENT,
  },
  send: {
    summary: "upload files to a server",
    usage: "send PATH... [options]",
    about:
      `Uploads files and folders. A folder travels as a tree of relative names
(photos/ is stored as photos/...), with empty files and folders, modes and
mtimes; its small files are pipelined over one connection.`,
    flags: SEND,
  },
  get: {
    summary: "download a stored file",
    usage: "get NAME [options]",
    about:
      `Downloads a stored file, or a stored folder with everything under it (one
verified get per file over one connection; modes and mtimes restored).`,
    flags: GET,
  },
  list: {
    summary: "list stored files with size and SHA-256",
    usage: "list [options]",
    flags: CONNECT,
  },
  hash: {
    summary: "print SHA-256 digests in sha256sum format",
    usage: "hash PATH...",
    about:
      `Prints "<sha256>  <path>" for each file, as sha256sum does (natively hashed,
several times faster than coreutils here). A path that cannot be read is
reported and the exit code is 1.`,
    flags: {},
  },
  demo: {
    summary: "run the self-contained demonstration",
    usage: "demo [options]",
    about:
      `Creates a random file, starts a server in the background, round-trips the
file through it and prints the result.`,
    flags: DEMO,
  },
  proxy: {
    summary: "a TCP proxy that damages traffic, to test bad links",
    usage: "proxy --listen HOST:PORT --target HOST:PORT [options]",
    about: `Forwards TCP connections and damages the byte stream on the way, per
1460-byte packet, like netem: for checking ftv (or anything) on bad links.`,
    flags: PROXY,
  },
} as const satisfies Record<string, Command>;

/** The name of a command. */
export type CommandName = keyof typeof COMMANDS;

/** The checked flag values of command `C`. */
export type CommandValues<C extends CommandName> = Values<
  typeof COMMANDS[C]["flags"]
>;

/** Whether `name` is a command. */
export function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

/** `ftv --help`: the commands and the exit codes. */
export function mainHelp(): string {
  const commands = Object.entries(COMMANDS).map(([name, command]) =>
    `  ${name.padEnd(10)} ${command.summary}`
  );
  return `ftv ${VERSION}: file transfer with end-to-end verification

Usage: ftv <command> [options]

Commands:
${commands.join("\n")}

Run 'ftv <command> --help' for a command's options.
Exit codes: 0 verified, 1 transfer failed, 2 usage error,
3 authentication failed (wrong token, untrusted server).`;
}

/** `ftv <command> --help`: usage, what it does, and every flag. */
export function commandHelp(name: CommandName): string {
  const command: Command = COMMANDS[name];
  const parts = [`Usage: ftv ${command.usage}`];
  if (command.about) parts.push(command.about);
  if (Object.keys(command.flags).length > 0) {
    parts.push(flagHelp(command.flags));
  }
  return parts.join("\n\n");
}
