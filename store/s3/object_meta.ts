/**
 * What ftv keeps in an S3 object's user metadata: the SHA-256 it was
 * verified with (`x-amz-meta-ftv-sha256`), and the mtime and mode the file
 * was sent with; and the file entry read back from it.
 *
 * @module
 */

import { type FileEntry, MODE_MASK } from "../../protocol.ts";
import type { ObjectHead } from "./bucket.ts";

const SHA256 = "ftv-sha256";
const MTIME = "ftv-mtime";
const MODE = "ftv-mode";

/** The metadata of an object verified to have `sha256`. */
export function objectMeta(
  sha256: string,
  attributes: { mode?: number | undefined; mtimeMs?: number | undefined },
): Record<string, string> {
  return {
    [SHA256]: sha256,
    [MTIME]: String(Math.round(attributes.mtimeMs ?? Date.now())),
    ...(attributes.mode === undefined
      ? {}
      : { [MODE]: (attributes.mode & MODE_MASK).toString(8) }),
  };
}

/** The digest an object was stored with, if ftv stored it. */
export function storedSha256(head: ObjectHead): string | undefined {
  const sha256 = head.meta[SHA256];
  return sha256 && /^[0-9a-f]{64}$/.test(sha256) ? sha256 : undefined;
}

/** The file entry of the object `head` describes, stored as `name` with `sha256`. */
export function entryOf(
  name: string,
  head: ObjectHead,
  sha256: string,
): FileEntry {
  const mtime = Number(head.meta[MTIME]);
  const mode = parseInt(head.meta[MODE] ?? "", 8);
  return {
    name,
    size: head.size,
    sha256,
    mtimeMs: Number.isFinite(mtime) ? mtime : head.lastModifiedMs,
    mode: Number.isFinite(mode) ? mode & MODE_MASK : 0o644,
  };
}

/** Mode and mtime of a folder marker (an empty object named `NAME/`). */
export function folderAttributes(
  head: ObjectHead | undefined,
): { mtimeMs: number; mode: number } {
  const mtime = Number(head?.meta[MTIME]);
  const mode = parseInt(head?.meta[MODE] ?? "", 8);
  return {
    mtimeMs: Number.isFinite(mtime) ? mtime : head?.lastModifiedMs ?? 0,
    mode: Number.isFinite(mode) ? mode & MODE_MASK : 0o755,
  };
}
