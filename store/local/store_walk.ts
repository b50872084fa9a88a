/**
 * Walking a server's data folder: every entry, depth first, never through a
 * symbolic link and never into ftv's own folder, to a bounded depth.
 *
 * @module
 */

import { META_DIR, nameRefusal } from "../../protocol/names.ts";

/** Most nested folders walked, so a pathological tree cannot recurse forever. */
const MAX_WALK_DEPTH = 64;

/**
 * Calls `visit` with the relative name and `lstat` of each entry under
 * `dir`, depth first; `all` includes part and state files and other names
 * a peer may not use.
 */
export async function walkStore(
  dir: string,
  visit: (name: string, info: Deno.FileInfo) => void | Promise<void>,
  options: { all: boolean; under?: string },
): Promise<void> {
  await walkFolder(dir, options.under ?? "", 0, visit, options.all);
}

async function walkFolder(
  dir: string,
  folder: string,
  depth: number,
  visit: (name: string, info: Deno.FileInfo) => void | Promise<void>,
  all: boolean,
): Promise<void> {
  if (depth > MAX_WALK_DEPTH) return;
  const path = folder === "" ? dir : `${dir}/${folder}`;
  const items: Deno.DirEntry[] = [];
  try {
    for await (const item of Deno.readDir(path)) items.push(item);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  for (const item of items) {
    if (item.isSymlink || (!all && nameRefusal(item.name))) continue;
    if (folder === "" && item.name === META_DIR) continue;
    const name = folder === "" ? item.name : `${folder}/${item.name}`;
    let info: Deno.FileInfo;
    try {
      // Sync: a listing asks this of every file, and each async call
      // costs more than the call itself.
      info = Deno.lstatSync(`${dir}/${name}`);
    } catch {
      continue; // Removed meanwhile.
    }
    await visit(name, info);
    if (info.isDirectory) {
      await walkFolder(dir, name, depth + 1, visit, all);
    }
  }
}
