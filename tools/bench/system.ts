/**
 * What the bench reads about the machine and its processes: peak RSS, the
 * CPU load of everything else, who listens on a port, whether it runs as
 * root; and flushing dirty pages between runs.
 *
 * @module
 */

import type { ChildHandle } from "../harness.ts";
import { BenchError, lastLine, sleep } from "./common.ts";
import { findTool, runCommand } from "./processes.ts";

const CAT = findTool("cat") ?? "cat";

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

/** Peak resident set size (KiB) of a live process, from /proc. */
export async function vmHwm(pid: number): Promise<number | undefined> {
  const status = await readProc(`/proc/${pid}/status`);
  const match = status && /^VmHWM:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) : undefined;
}

/** The `deno` process at or just under `pid` (setsid/time may sit between). */
export async function denoPid(pid: number): Promise<number> {
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
export async function cpuBusy(ms = 1000): Promise<number | undefined> {
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

/** `12%`, with a warning when other processes keep the CPUs busy. */
export function describeBusy(busy: number | undefined): string {
  if (busy === undefined) return "unknown";
  const text = `${(busy * 100).toFixed(0)}%`;
  return busy > 0.1
    ? `${text} (other processes are busy: figures skewed)`
    : text;
}

/** Whether the bench runs as root (`id -u`; Deno.uid() needs --allow-sys). */
export async function isRoot(): Promise<boolean> {
  const out = await runCommand(findTool("id") ?? "id", ["-u"], 10_000)
    .catch(() => undefined);
  return out?.stdout.trim() === "0";
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
export async function waitListening(
  port: number,
  child: ChildHandle,
  what: string,
  stderr?: () => string,
): Promise<void> {
  const deadline = performance.now() + 15_000;
  while (!(await isListening(port))) {
    if (!child.running) {
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

/** Flushes dirty pages so one run's writeback does not slow the next. */
export async function syncDisks(): Promise<void> {
  const sync = findTool("sync");
  if (sync) await runCommand(sync, [], 120_000).catch(() => undefined);
}
