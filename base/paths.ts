/**
 * Local paths as the client names files: the last component of a path.
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
