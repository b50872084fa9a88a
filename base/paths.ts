/**
 * Local paths as the client names files: the last component of a path, the
 * folder holding it, and what lies there.
 *
 * @module
 */

/**
 * The last component of a path, ignoring trailing slashes and backslashes.
 *
 * @example
 * ```ts
 * import { basename } from "./paths.ts";
 * console.log(basename("photos/2024/")); // 2024
 * ```
 */
export function basename(path: string): string {
  const trimmed = path.replace(/[/\\]+$/, "");
  return trimmed.slice(
    Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\")) + 1,
  );
}

/**
 * The folder holding `path`: everything before its last "/", or "." for a
 * bare name.
 *
 * @example
 * ```ts
 * import { folderOf } from "./paths.ts";
 * console.log(folderOf("photos/2024/a.jpg"), folderOf("a.jpg")); // photos/2024 .
 * ```
 */
export function folderOf(path: string): string {
  const at = path.lastIndexOf("/");
  return at < 0 ? "." : at === 0 ? "/" : path.slice(0, at);
}

/**
 * `path` without trailing slashes (a lone "/" stays): `get photos/` asks
 * for `photos`.
 */
export function withoutTrailingSlashes(path: string): string {
  return path.replace(/(.)\/+$/, "$1");
}

/** What a local path names, following links; `undefined` when nothing can be read there. */
export async function pathKind(
  path: string,
): Promise<"file" | "folder" | "other" | undefined> {
  try {
    const info = await Deno.stat(path);
    return info.isFile ? "file" : info.isDirectory ? "folder" : "other";
  } catch {
    return undefined;
  }
}

/**
 * Whether anything is at `path`, a link included (not followed). Errors
 * other than "not found", such as a permission refused, are thrown.
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
