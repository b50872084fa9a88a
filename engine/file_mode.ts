/**
 * The permission bits a received file or folder gets: what the peer sent,
 * never setuid, setgid or sticky, and never wider than this process's umask
 * allows (as `cp` and `tar` do without `-p`). `chmod` ignores the umask, so
 * it is applied here.
 *
 * @module
 */

import { MODE_MASK } from "../protocol.ts";

let known: number | undefined;

/**
 * This process's umask, found once by creating a probe file in `dir` with
 * every permission bit asked for and reading back what the kernel gave it:
 * `process.umask()` would need `--allow-sys`. Where no probe can be made,
 * the common `0o022`.
 */
export function umaskIn(dir: string): number {
  if (known !== undefined) return known;
  const probe = `${dir}/.ftv-umask-${crypto.randomUUID()}`;
  try {
    Deno.writeFileSync(probe, new Uint8Array(0), {
      createNew: true,
      mode: 0o777,
    });
    try {
      known = 0o777 & ~((Deno.statSync(probe).mode ?? 0o755) & 0o777);
    } finally {
      Deno.removeSync(probe);
    }
  } catch {
    known = 0o022;
  }
  return known;
}

/**
 * `mode` as a received file or folder in `dir` may have it: masked to the
 * permission bits, then by the umask.
 *
 * @example
 * ```ts
 * import { receivedMode } from "./file_mode.ts";
 * console.log(receivedMode(0o4777, ".").toString(8)); // 755 with umask 022
 * ```
 */
export function receivedMode(mode: number, dir: string): number {
  return mode & MODE_MASK & ~umaskIn(dir);
}
