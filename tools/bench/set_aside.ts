/**
 * The bench's temporary folder, and received copies set aside rather than
 * deleted right away.
 *
 * A received copy is not deleted after its run but just before the next
 * timed section: on a VM that hands idle free memory back to its host (free
 * page reporting, ~2 s after it is freed), touching that memory again costs
 * ~2.5 CPU-s of system time per GiB, so a copy deleted long before the next
 * run would charge whichever tool runs next. Deleted right before, its page
 * cache is reused while the host still backs it.
 *
 * @module
 */

import { basename, exists, remove, sleep } from "./common.ts";
import { syncDisks } from "./system.ts";

/** Copies set aside by {@linkcode discard}, to delete before the next run. */
const setAside: string[] = [];
let setAsideDir = "";
/** Paths moved aside so far, for unique names. */
let setAsideCount = 0;
/**
 * The VM reports free memory 2 s after a free arms its report, and then
 * reports all that is free. A copy deleted within that time of the previous
 * one was handed back just as the next run started reusing it (~1.5 CPU-s
 * per GiB more, on whichever of two back-to-back rows came second), so
 * {@linkcode releaseSetAside} waits until this long after the last release.
 */
const REPORT_DELAY_MS = 2500;
/** When {@linkcode releaseSetAside} last deleted something. */
let lastRelease = -Infinity;
/** The bench's temporary folder. */
let work = "";

/** Makes the bench's temporary folder (in `dir`, or the system's). */
export async function makeWorkDir(dir?: string): Promise<string> {
  if (dir) await Deno.mkdir(dir, { recursive: true });
  work = await Deno.makeTempDir({
    prefix: "ftv-bench-",
    ...(dir ? { dir } : {}),
  });
  setAsideDir = `${work}/set-aside`;
  await Deno.mkdir(setAsideDir);
  return work;
}

/** The bench's temporary folder, once made. */
export function workDir(): string {
  return work;
}

/**
 * Moves `path` (file or folder) aside, to be deleted by
 * {@linkcode releaseSetAside}; with `keep`, only with the bench's folder when
 * it ends (see `Load.keep`).
 */
export async function discard(path: string, keep = false): Promise<void> {
  if (!(await exists(path))) return;
  const to = `${setAsideDir}/${setAsideCount++}-${basename(path)}`;
  await Deno.rename(path, to);
  if (!keep) setAside.push(to);
}

/**
 * Deletes what was set aside and syncs; called right before a timed section.
 * A section that writes little (`free` false) only syncs, leaving the memory
 * of what was set aside to the next one that writes a big copy.
 */
export async function releaseSetAside(free = true): Promise<void> {
  if (free && setAside.length) {
    await sleep(Math.max(0, lastRelease + REPORT_DELAY_MS - performance.now()));
    while (setAside.length) await remove(setAside.pop()!);
    lastRelease = performance.now();
  }
  await syncDisks();
}

/** `path` as a new empty folder, what was there set aside. */
export async function freshDir(path: string): Promise<string> {
  await discard(path);
  await Deno.mkdir(path, { recursive: true });
  return path;
}
