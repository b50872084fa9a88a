/**
 * How the bench finds and runs programs: each in its own process group (via
 * `setsid`), so stopping one also stops its pipeline and its children; the
 * starting and stopping itself is {@linkcode spawnProcess}'s.
 *
 * @module
 */

import {
  type ChildHandle,
  runProcess,
  type RunResult,
  spawnProcess,
} from "../harness.ts";
import { basename, BenchError } from "./common.ts";

/** An executable's path, from PATH and `extra` folders, or undefined. */
export function findTool(
  name: string,
  extra: string[] = [],
): string | undefined {
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

/** The names of the `tools` that were not found. */
export function missing(tools: Record<string, string | undefined>): string[] {
  return Object.entries(tools).filter(([, path]) => !path).map(([name]) =>
    name
  );
}

/** `setsid`, which starts a program in a process group of its own. */
export const SETSID = findTool("setsid");
/** GNU time, for each ftv process's peak RSS and CPU seconds. */
export const TIME = findTool("time", ["/usr/bin"]);

/** `setsid` in front of `cmd`, when there is one. */
function grouped(cmd: string, args: string[]): [string, string[]] {
  return SETSID ? [SETSID, [cmd, ...args]] : [cmd, args];
}

/** Options for {@linkcode spawn}. */
export interface SpawnOptions {
  stdout?: "piped" | "null";
  stderr?: "piped" | "null";
  cwd?: string;
}

/**
 * Starts a command in its own process group (via `setsid`, which execs in
 * place), so stopping it also stops its pipeline and its children.
 */
export function spawn(
  cmd: string,
  args: string[],
  options: SpawnOptions = {},
): ChildHandle {
  const [program, argv] = grouped(cmd, args);
  try {
    return spawnProcess(program, argv, { ...options, group: !!SETSID });
  } catch (error) {
    throw new BenchError(`cannot start ${cmd}: ${(error as Error).message}`);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
export async function stopProcess(
  child: ChildHandle,
  graceMs = 3000,
): Promise<void> {
  await child.stop({ graceMs });
}

/** Reads a piped stream to its end as text. */
export async function readAll(
  stream: ReadableStream<Uint8Array> | null,
): Promise<string> {
  if (!stream) return "";
  return await new Response(stream).text();
}

/** What a command run by {@linkcode runCommand} did. */
export interface Finished extends Omit<RunResult, "timedOut"> {
  pid: number;
}

/**
 * Runs a command to the end (stopping it after `timeoutMs`); times it.
 * `watch`, given the child's pid, starts watching it and returns how to stop.
 */
export async function runCommand(
  cmd: string,
  args: string[],
  timeoutMs: number,
  cwd?: string,
  watch?: (pid: number) => () => Promise<void>,
): Promise<Finished> {
  const [program, argv] = grouped(cmd, args);
  let child;
  try {
    child = runProcess(program, argv, {
      group: !!SETSID,
      timeoutMs,
      timeoutGraceMs: 500,
      ...(cwd ? { cwd } : {}),
    });
  } catch (error) {
    throw new BenchError(`cannot start ${cmd}: ${(error as Error).message}`);
  }
  const stopWatching = watch?.(child.pid);
  let result;
  try {
    result = await child.result;
  } finally {
    await stopWatching?.();
  }
  if (result.timedOut) {
    throw new BenchError(
      `${basename(cmd)} ${args[0] ?? ""} took longer than ${
        Math.round(timeoutMs / 1000)
      } s; stopped it`,
    );
  }
  const { code, stdout, stderr, ms } = result;
  return { code, stdout, stderr, ms, pid: child.pid };
}
