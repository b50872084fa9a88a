/**
 * The tree rows' folder of many small random files, and the check of a
 * received copy of it.
 *
 * @module
 */

import { createHash, randomFillSync } from "node:crypto";
import { BenchError, exists } from "./common.ts";
import { hashFile } from "../../engine/digest.ts";

/** The tree rows' tree: this many folders of this many files of this size. */
const TREE_DIRS = 100;
const TREE_FILES = 100;
const TREE_FILE_SIZE = 1024;
/** One file in this many has its SHA-256 checked in every copy of the tree. */
const TREE_SAMPLE_EVERY = 500;

/** The tree rows' folder: what it holds, and a sample of its files' SHA-256s. */
export interface TreeSource {
  path: string;
  files: number;
  bytes: number;
  /** Name inside the tree → SHA-256 (hex), one file in {@linkcode TREE_SAMPLE_EVERY}. */
  samples: Map<string, string>;
}

/** Writes {@linkcode TREE_DIRS} folders of {@linkcode TREE_FILES} random files. */
export async function makeTree(path: string): Promise<TreeSource> {
  const samples = new Map<string, string>();
  const content = new Uint8Array(TREE_FILE_SIZE);
  for (let d = 0; d < TREE_DIRS; d++) {
    const dir = `d${String(d).padStart(2, "0")}`;
    await Deno.mkdir(`${path}/${dir}`, { recursive: true });
    for (let f = 0; f < TREE_FILES; f++) {
      const name = `${dir}/f${String(f).padStart(3, "0")}.dat`;
      randomFillSync(content);
      await Deno.writeFile(`${path}/${name}`, content);
      if ((d * TREE_FILES + f) % TREE_SAMPLE_EVERY === 0) {
        samples.set(name, createHash("sha256").update(content).digest("hex"));
      }
    }
  }
  const files = TREE_DIRS * TREE_FILES;
  return { path, files, bytes: files * TREE_FILE_SIZE, samples };
}

/** Files under `path` (recursively) and their total size. */
async function countFiles(
  path: string,
): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for await (const entry of Deno.readDir(path)) {
    const full = `${path}/${entry.name}`;
    if (entry.isDirectory) {
      const inner = await countFiles(full);
      files += inner.files;
      bytes += inner.bytes;
    } else if (entry.isFile) {
      files++;
      bytes += (await Deno.stat(full)).size;
    }
  }
  return { files, bytes };
}

/**
 * Checks a received copy of the tree: file count and total size, and the
 * SHA-256 of the sample files. Never inside a timed section.
 */
export async function checkTree(
  path: string,
  tree: TreeSource,
  what: string,
): Promise<void> {
  if (!(await exists(path))) {
    throw new BenchError(`${what}: no copy at ${path}`);
  }
  const { files, bytes } = await countFiles(path);
  if (files !== tree.files || bytes !== tree.bytes) {
    throw new BenchError(
      `${what}: copy has ${files} files of ${bytes} bytes, expected ${tree.files} of ${tree.bytes}`,
    );
  }
  for (const [name, sha256] of tree.samples) {
    const digest = await hashFile(`${path}/${name}`).catch(() => "none");
    if (digest !== sha256) {
      throw new BenchError(
        `${what}: ${name}'s SHA-256 ${digest} is not the source's ${sha256}`,
      );
    }
  }
}

/** What the tree is, for labels and messages. */
export function treeText(): string {
  return `tree of ${TREE_DIRS * TREE_FILES} files x ${
    TREE_FILE_SIZE / 1024
  } KiB`;
}
