/**
 * Helpers for the HTTP front door's tests: an `ftv server --http 0` child
 * with its HTTP port read from its log, and curl or wget run to their end.
 *
 * @module
 */

import { runProcess } from "../tools/harness.ts";
import { type ServiceProcess, spawnServer } from "./test_util.ts";

/** A server child with its HTTP port. */
export interface HttpServer extends AsyncDisposable {
  readonly server: ServiceProcess;
  /** The HTTP port it logged. */
  readonly port: number;
  /** `http://127.0.0.1:PORT`. */
  readonly base: string;
}

/** Starts `ftv server --dir DIR --http 0 ARGS` (a `--http` in `args` wins). */
export async function httpServer(
  dir: string,
  args: string[] = [],
): Promise<HttpServer> {
  const server = await spawnServer(["--dir", dir, "--http", "0", ...args]);
  const port = Number(/Serving HTTPS? on \S+:(\d+)/.exec(server.log())?.[1]);
  return {
    server,
    port,
    base: `http://127.0.0.1:${port}`,
    [Symbol.asyncDispose]: () => server[Symbol.asyncDispose](),
  };
}

/** What curl or wget did. */
export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `program args` to its end (30 s at most). */
export async function run(program: string, args: string[]): Promise<ToolRun> {
  await using child = runProcess(program, args, { timeoutMs: 30_000 });
  const { code, stdout, stderr } = await child.result;
  return { code, stdout, stderr };
}

/** `curl -sS ARGS`: `-w '%{http_code}'` output is the last line of stdout. */
export function curl(...args: string[]): Promise<ToolRun> {
  return run("curl", ["-sS", "--path-as-is", ...args]);
}

/** The HTTP status `curl -w '\n%{http_code}'` printed last. */
export function statusOf(result: ToolRun): number {
  return Number(result.stdout.trim().split("\n").at(-1));
}

/** The header `name` in `curl -D -` output (the last response's). */
export function headerOf(dump: string, name: string): string | undefined {
  const blocks = dump.split(/\r?\n\r?\n/).filter((b) => /^HTTP\//.test(b));
  const last = blocks.filter((b) => !/^HTTP\/\S+ 100/.test(b)).at(-1) ?? "";
  const line = last.split(/\r?\n/).find((l) =>
    l.toLowerCase().startsWith(name.toLowerCase() + ":")
  );
  return line?.slice(name.length + 1).trim();
}

/** `sha-256=:BASE64:` of a hex SHA-256. */
export function reprDigestOf(hex: string): string {
  return `sha-256=:${
    btoa(String.fromCharCode(...hex.match(/../g)!.map((h) => parseInt(h, 16))))
  }:`;
}

/** `curl -T source BASE/files/NAME`: the HTTP status. */
export async function putFile(
  base: string,
  name: string,
  source: string,
): Promise<number> {
  const put = await curl(
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    "-T",
    source,
    `${base}/files/${name}`,
  );
  return statusOf(put);
}

/** A tus request to `url`. */
export function tus(
  url: string,
  method: string,
  headers: Record<string, string> = {},
  body?: Uint8Array<ArrayBuffer>,
) {
  return fetch(url, {
    method,
    headers: { "Tus-Resumable": "1.0.0", ...headers },
    ...(body ? { body } : {}),
  });
}
