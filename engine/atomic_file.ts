/**
 * Files that appear whole or not at all: written beside their final name
 * (`<name>.ftv-part`), synced, then renamed into place, with the folder
 * synced so the rename survives a crash.
 *
 * @module
 */

import {
  ERROR_CODE,
  isNoSpace,
  type Outcome,
  refusal,
} from "../base/errors.ts";
import { folderOf } from "../base/paths.ts";
import { receivedMode } from "./file_mode.ts";
import { createPartSync } from "./part_file.ts";
import { PART_SUFFIX } from "../protocol/names.ts";

/** Removes `path`, ignoring one that is already gone. */
export async function removeIfPresent(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}

/** Syncs the folder holding `path`, so a rename into it survives a crash. */
export async function syncFolder(path: string): Promise<void> {
  const folder = folderOf(path);
  try {
    using dir = await Deno.open(folder, { read: true });
    await dir.sync();
  } catch {
    // Some platforms cannot open or sync a folder; the rename still happened.
  }
}

/**
 * Writes a whole small file that is already verified, with `mode` as a
 * received file may have it (see `file_mode.ts`): `<path>.ftv-part`
 * (created exclusively and claimed, so never through a link nor while
 * another transfer holds it) with its mode and mtime, synced when asked,
 * then renamed into place under the claim, so the final name only ever
 * holds the whole file. Synchronous, because for a small file each async
 * call costs more than the work. A `busy` refusal when a part file is
 * already there (an interrupted transfer of it, or a concurrent one), and
 * `no_space` when the disk is full; a part file that failed is removed at
 * once. Resolves to the stored file's stat.
 */
export function writeWhole(
  path: string,
  bytes: Uint8Array,
  attributes: { mode: number; mtimeMs: number; fsync: boolean },
): Outcome<Deno.FileInfo> {
  const part = path + PART_SUFFIX;
  const file = createPartSync(
    part,
    receivedMode(attributes.mode, folderOf(path)),
  );
  if (!file) {
    return {
      ok: false,
      refusal: refusal(
        ERROR_CODE.busy,
        "another transfer of it is in progress or was interrupted",
      ),
    };
  }
  try {
    for (let written = 0; written < bytes.length;) {
      written += file.writeSync(bytes.subarray(written));
    }
    file.utimeSync(new Date(), new Date(attributes.mtimeMs));
    if (attributes.fsync) file.syncDataSync();
    Deno.renameSync(part, path);
    if (attributes.fsync) syncFolderSync(path);
    return { ok: true, value: file.statSync() };
  } catch (error) {
    removeQuietly(part);
    if (isNoSpace(error)) {
      return {
        ok: false,
        refusal: refusal(ERROR_CODE.noSpace, "no space left on the disk"),
      };
    }
    throw error;
  } finally {
    file.close();
  }
}

/** Removes `path` if it is there, ignoring any failure (used while cleaning up after one). */
function removeQuietly(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Gone already, or cannot be removed: the failure that brought us here matters more.
  }
}

/** Syncs the folder holding `path`, synchronously; see {@linkcode syncFolder}. */
function syncFolderSync(path: string): void {
  const folder = folderOf(path);
  try {
    using dir = Deno.openSync(folder, { read: true });
    dir.syncSync();
  } catch {
    // Some platforms cannot open or sync a folder; the rename still happened.
  }
}
