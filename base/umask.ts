/**
 * The process's umask: the permission bits a received file or folder may
 * not have, whatever mode the peer sent.
 *
 * @module
 */

import process from "node:process";

/** What to assume when the umask cannot be learnt: the strictest usual one. */
const FALLBACK_UMASK = 0o077;

let known: number | undefined;

/**
 * The umask, from `node:process` when `--allow-sys` is granted, else
 * measured once by creating a folder (mode 0777) in `folder`, where the
 * caller is about to write anyway, and removing it. When neither works,
 * 0o077: a received mode is narrowed rather than widened.
 */
export function umaskIn(folder: string): number {
  known ??= fromProcess() ?? measuredIn(folder);
  return known ?? FALLBACK_UMASK;
}

function fromProcess(): number | undefined {
  try {
    // Asking first avoids a permission prompt on a terminal.
    if (Deno.permissions.querySync({ name: "sys" }).state !== "granted") {
      return undefined;
    }
    return process.umask();
  } catch {
    return undefined;
  }
}

function measuredIn(folder: string): number | undefined {
  const probe = `${folder}/.ftv-umask-${crypto.randomUUID()}`;
  try {
    Deno.mkdirSync(probe, { mode: 0o777 });
  } catch {
    return undefined;
  }
  try {
    const mode = Deno.lstatSync(probe).mode;
    return mode === null ? 0 : ~mode & 0o777;
  } finally {
    Deno.removeSync(probe);
  }
}
