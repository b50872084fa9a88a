/**
 * The baselines ftv is measured against, when installed: socat with
 * `openssl dgst` at both ends, and an rsync daemon (default, with
 * `--checksum-choice=sha1`, and `-r` for the tree). scp is in `scp.ts`.
 *
 * @module
 */

import { type ChildHandle, freePort, within } from "../harness.ts";
import { BenchError, HOST, lastLine } from "./common.ts";
import {
  findTool,
  missing,
  readAll,
  runCommand,
  spawn,
  stopProcess,
} from "./processes.ts";
import {
  baselineSample,
  type Context,
  fileLoad,
  type Load,
  type Row,
  type Sample,
  skippedRow,
  treeLoad,
} from "./rows.ts";
import { scpRow } from "./scp.ts";
import { discard, freshDir, releaseSetAside } from "./set_aside.ts";
import { checkCopy } from "./sources.ts";
import { isRoot, waitListening } from "./system.ts";
import { treeText } from "./tree.ts";

/** Buffer size socat is given (its default of 8 KiB would handicap it). */
const SOCAT_BUFFER = 256 * 1024;

/** The baseline rows `--only` asks for, in order. */
export function baselineRows(ctx: Context): Row[] {
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
  return {
    id: "socat",
    label,
    kind: "baseline",
    samples: [],
    run: (index) => socatRun(ctx, tools.bash!, label, index),
  };
}

/** One timed socat run: a receiver listening, then the sender. */
async function socatRun(
  ctx: Context,
  bash: string,
  label: string,
  index: number,
): Promise<Sample> {
  const { work, source } = ctx;
  const out = `${work}/socat-out.bin`;
  const recvDigest = `${work}/socat-recv.sha256`;
  const sendDigest = `${work}/socat-send.sha256`;
  const b = String(SOCAT_BUFFER);
  await discard(out);
  const port = freePort(HOST);
  const receiver = spawn(bash, [
    "-c",
    `set -o pipefail; socat -u -b ${b} TCP-LISTEN:$1,bind=${HOST},reuseaddr STDOUT | tee "$2" | openssl dgst -sha256 -r > "$3"`,
    "bash",
    String(port),
    out,
    recvDigest,
  ], { stderr: "piped" });
  const receiverErr = readAll(receiver.process.stderr);
  let errText = "";
  receiverErr.then((t) => errText = t);
  try {
    await waitListening(port, receiver, "socat", () => errText);
    await releaseSetAside();
    const started = performance.now();
    const sender = await runCommand(bash, [
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
      throw new BenchError(`socat sender failed: ${lastLine(sender.stderr)}`);
    }
    if (!done) throw new BenchError("socat receiver did not finish");
    if (!(await receiver.status).success) {
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
  load: Load = fileLoad(ctx.source, "bench.bin"),
): Row {
  const rsync = findTool("rsync");
  if (!rsync) return skippedRow(id, label, "rsync not installed");
  const base = `${ctx.work}/${id}`;
  const dest = `${base}/dest`;
  let daemon: { child: ChildHandle; port: number } | undefined;
  return {
    id,
    label,
    kind: "baseline",
    ...(load.workload ? { workload: load.workload } : {}),
    samples: [],
    async setup() {
      await freshDir(dest);
      daemon = await startRsyncDaemon(rsync, base, dest);
    },
    async run(index) {
      const copy = `${dest}/${load.name}`;
      await discard(copy, load.keep);
      await releaseSetAside(!load.light);
      const result = await runCommand(rsync, [
        ...flags,
        ...(load.folder ? ["-r", `${load.path}/`] : [load.path]),
        `rsync://${HOST}:${daemon!.port}/bench/${load.name}`,
      ], ctx.timeout(load.bytes));
      return await baselineSample("rsync", result, load, {
        copy,
        index,
        label,
      });
    },
    async teardown() {
      if (daemon) await stopProcess(daemon.child);
    },
  };
}

/** Starts an rsync daemon on a free port, its module `bench` at `dest`. */
async function startRsyncDaemon(
  rsync: string,
  base: string,
  dest: string,
): Promise<{ child: ChildHandle; port: number }> {
  const port = freePort(HOST);
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
  const child = spawn(rsync, [
    "--daemon",
    "--no-detach",
    `--config=${base}/rsyncd.conf`,
    `--address=${HOST}`,
    `--port=${port}`,
    `--log-file=${base}/rsyncd.log`,
  ]);
  try {
    await waitListening(
      port,
      child,
      "rsync daemon",
      () => readTail(`${base}/rsyncd.log`),
    );
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
  return { child, port };
}

function readTail(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}
