/**
 * Files that appear whole or not at all: written beside their final name
 * (`<name>.ftv-part`), synced, then renamed into place, with the folder
 * synced so the rename survives a crash.
 *
 * @module
 */

import { ERROR_CODE, type Refusal, refusal } from "../base/errors.ts";
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
  const slash = path.lastIndexOf("/");
  const folder = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  try {
    using dir = await Deno.open(folder, { read: true });
    await dir.sync();
  } catch {
    // Some platforms cannot open or sync a folder; the rename still happened.
  }
}

/**
 * Writes a whole small file that is already verified: `<path>.ftv-part`
 * (created exclusively, so never through a link) with its mode and mtime,
 * synced when asked, then renamed into place, so the final name only ever
 * holds the whole file. Synchronous, because for a small file each async
 * call costs more than the work. A `busy` refusal when a part file is
 * already there (an interrupted transfer of it, or a concurrent one).
 */
export function writeWhole(
  path: string,
  bytes: Uint8Array,
  attributes: { mode: number; mtimeMs: number; fsync: boolean },
): Refusal | undefined {
  const part = path + PART_SUFFIX;
  try {
    Deno.writeFileSync(part, bytes, { createNew: true, mode: attributes.mode });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      return refusal(
        ERROR_CODE.busy,
        `${
          JSON.stringify(part)
        } exists: another transfer of it is under way or was interrupted`,
      );
    }
    throw error;
  }
  try {
    Deno.utimeSync(part, new Date(), new Date(attributes.mtimeMs));
    if (attributes.fsync) {
      using file = Deno.openSync(part, { read: true });
      file.syncDataSync();
    }
    Deno.renameSync(part, path);
  } catch (error) {
    Deno.removeSync(part);
    throw error;
  }
  if (attributes.fsync) syncFolderSync(path);
  return undefined;
}

/** Syncs the folder holding `path`, synchronously; see {@linkcode syncFolder}. */
function syncFolderSync(path: string): void {
  const slash = path.lastIndexOf("/");
  const folder = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  try {
    using dir = Deno.openSync(folder, { read: true });
    dir.syncSync();
  } catch {
    // Some platforms cannot open or sync a folder; the rename still happened.
  }
}
