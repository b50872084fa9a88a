/**
 * The permission bits a received file or folder gets: what the peer sent,
 * never setuid, setgid or sticky, and never wider than this process's umask
 * allows (as `cp` and `tar` do without `-p`). `chmod` ignores the umask, so
 * it is applied here.
 *
 * @module
 */

import { umaskIn } from "../base/umask.ts";
import { MODE_MASK } from "../protocol.ts";

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
