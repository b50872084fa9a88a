/**
 * The bench's command line: its options, each declared once, and the row
 * ids `--only` takes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseBytes } from "../../base/bytes.ts";
import { BenchError } from "./common.ts";

export const USAGE = `Usage: deno task bench [options]

  --size SIZE          test file size, e.g. 1G, 256M, 1GiB (default: 1GiB);
                       binary units: M, MB and MiB all mean 2^20 bytes
  --runs N             timed runs of every variant, alternating (default: 3)
  --json               print one JSON object instead of the table
  --clients N          clients in the concurrent row (default: 16)
  --client-size SIZE   bytes each concurrent client sends (default: 64MiB)
  --only IDS           comma-separated rows: send,send-none,send-text,send-log,
                       get,send-tls,client,send-err,get-err,clients,tree,
                       tree-get,http-get,http-put,tus,https-put,https-tus,
                       web-put,web-xhr,
                       s3-send,s3-get,s3-clients-3,s3-clients-1,
                       socat,rsync,rsync-sha1,rsync-tree,scp
                       (default: all)
  --rss-size SIZE      instead of the benchmark, measure each side's peak RSS
                       while moving one file of SIZE (e.g. 4GiB)
  --dir DIR            where to put temporary files (default: system temp)
  --no-fsync           pass --no-fsync to ftv's receiving side, as the
                       baselines never sync (default: ftv syncs every copy)`;

/** The rows `--only` can name, in the order they run. */
export const ROW_IDS = [
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
  "http-get",
  "http-put",
  "tus",
  "https-put",
  "https-tus",
  "web-put",
  "web-xhr",
  "send-noparity",
  "get-fec-off",
  "get-fec-auto",
  "get-fec-clean",
  "rs-encode",
  "rs-decode",
  "s3-send",
  "s3-get",
  "s3-clients-3",
  "s3-clients-1",
  "socat",
  "rsync",
  "rsync-sha1",
  "rsync-tree",
  "scp",
] as const;

/** What the command line asked for. */
export interface Options {
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

/** The options in `args`; undefined after printing `--help`. */
export function parseOptions(args: string[]): Options | undefined {
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
  const only = parseOnly(v.only);
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

function parseOnly(raw: string | undefined): Set<string> {
  const only = new Set<string>(
    raw === undefined ? ROW_IDS : raw.split(",").map((s) => s.trim()),
  );
  for (const id of only) {
    if (!(ROW_IDS as readonly string[]).includes(id)) {
      throw new BenchError(
        `--only: unknown row "${id}" (rows: ${ROW_IDS.join(",")})`,
      );
    }
  }
  return only;
}

/** `1GiB`, `64M`, `500MB` (= 500 MiB), `4096` (bytes), up to 2^50. */
function parseSize(raw: string, flag: string): number {
  let bytes = NaN;
  try {
    bytes = parseBytes(raw);
  } catch {
    // Reported below.
  }
  if (!(bytes >= 1 && bytes <= 2 ** 50)) {
    throw new BenchError(
      `${flag} must be a size like 1G, 64M or 1GiB, got "${raw}"`,
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
