/**
 * A throwaway single-node Ceph with two RADOS gateways, for the S3 tests
 * and the bench: started from nothing by `start.sh` in a folder of its own,
 * stopped by PID by `stop.sh` (see `NOTES.md` beside this file). The S3
 * credentials and endpoints come from the `env` file `start.sh` writes.
 *
 * @example
 * ```ts
 * import { cephMissing, startCeph } from "./cluster.ts";
 * if (!(await cephMissing())) {
 *   await using ceph = await startCeph();
 *   console.log(ceph.endpoints);
 * }
 * ```
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { runProcess } from "../harness.ts";

const HERE = fileURLToPath(new URL(".", import.meta.url));

/** The programs `start.sh` needs. */
const NEEDED = [
  "radosgw",
  "radosgw-admin",
  "ceph",
  "ceph-mon",
  "ceph-osd",
  "ceph-mgr",
  "ceph-authtool",
  "monmaptool",
  "curl",
  "uuidgen",
  "ss",
  "setsid",
];

/** A running cluster; disposing stops it (by PID) and removes its folder. */
export interface CephCluster extends AsyncDisposable {
  /** Its folder. */
  readonly dir: string;
  /** The two gateways, `http://127.0.0.1:PORT`. */
  readonly endpoints: readonly [string, string];
  /** What `DIR/env` sets: credentials, region, endpoints. */
  readonly env: Readonly<Record<string, string>>;
  /** Kills gateway `a` or `b` with SIGKILL. */
  killGateway(gateway: "a" | "b"): Promise<void>;
  /** Starts a stopped gateway again on its port. */
  restartGateway(gateway: "a" | "b"): Promise<void>;
  /** Stops every daemon by PID and removes the folder. */
  stop(): Promise<void>;
}

/**
 * Why a cluster cannot be started here (a program missing, with what to
 * install), or `undefined` when it can.
 */
export async function cephMissing(): Promise<string | undefined> {
  const missing: string[] = [];
  for (const program of NEEDED) {
    const found = await runProcess("sh", ["-c", `command -v ${program}`], {
      timeoutMs: 10_000,
    }).result;
    if (found.code !== 0) missing.push(program);
  }
  return missing.length === 0
    ? undefined
    : `${
      missing.join(", ")
    } not installed (tools/ceph/ensure.sh installs Debian's ceph and radosgw, about 290 MB)`;
}

/** Runs one of the scripts here; throws with its output when it fails. */
async function script(name: string, args: string[], timeoutMs: number) {
  const result = await runProcess(`${HERE}${name}`, args, {
    timeoutMs,
    timeoutGraceMs: 5000,
  }).result;
  if (result.code !== 0) {
    throw new Error(
      `Cannot run tools/ceph/${name} ${args.join(" ")}: exit ${result.code}${
        result.timedOut ? " (timed out)" : ""
      }\n${result.stdout}${result.stderr}`,
    );
  }
  return result;
}

/** Starts a cluster in a fresh temporary folder (about 6-15 s). */
export async function startCeph(): Promise<CephCluster> {
  const parent = await Deno.makeTempDir({ prefix: "ftv-ceph-" });
  const dir = `${parent}/cluster`;
  try {
    await script("start.sh", [dir], 240_000);
  } catch (error) {
    await Deno.remove(parent, { recursive: true }).catch(() => undefined);
    throw error;
  }
  const env = parseEnv(await Deno.readTextFile(`${dir}/env`));
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      await script("stop.sh", [dir, "--clean"], 120_000);
      await Deno.remove(parent, { recursive: true }).catch(() => undefined);
    })();
  return {
    dir,
    endpoints: [env.FTV_S3_ENDPOINT_A!, env.FTV_S3_ENDPOINT_B!],
    env,
    async killGateway(gateway) {
      await script("stop.sh", [dir, "--kill", `rgw.${gateway}`], 30_000);
    },
    async restartGateway(gateway) {
      await script("restart-rgw.sh", [dir, gateway], 90_000);
    },
    stop,
    [Symbol.asyncDispose]: stop,
  };
}

/** The `export NAME=VALUE` lines of an env file `start.sh` wrote. */
function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^export ([A-Z0-9_]+)=(.*)$/.exec(line);
    if (match) env[match[1]!] = match[2]!.replace(/^'(.*)'$/, "$1");
  }
  return env;
}
