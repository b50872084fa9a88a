/**
 * A part file's resume state, `<name>.ftv-state`: the manifest of the file
 * being received and a bitmap of the chunks written and synced. It is
 * written to a temporary file and renamed into place, so it is whole or
 * absent; a temporary that failed is removed at once.
 *
 * @module
 */

import type { Hash } from "node:crypto";
import { ChunkBitmap } from "./bitmap.ts";
import { removeIfPresent } from "./atomic_file.ts";
import { chunkCount, chunkLength } from "./chunks.ts";

/** What identifies the file being received. */
export interface Manifest {
  name: string;
  size: number;
  chunkSize: number;
  /** Modification time of the source, part of the file's identity for resume. */
  mtimeMs: number;
  /** The whole-file digest, when the sender knows it up front. */
  sha256?: string;
}

/** What `ChunkStore.settle` restores on undo: the hash, bitmap and tail at `ChunkStore.snapshot`. */
export interface StoreSnapshot {
  readonly hash: Hash;
  readonly nextToHash: number;
  readonly have: ChunkBitmap;
  readonly tail: number;
  readonly tailSeq: number;
}

/** The state file's contents. */
export interface SavedState {
  version: 1;
  manifest: Manifest;
  have: string;
  /**
   * Bytes of the first chunk not in `have` that the part file holds from
   * that chunk's start (an HTTP upload cut mid-chunk); absent means none.
   */
  tail?: number;
}

const STATE_VERSION = 1;

/** Saves `manifest`, `have` and a `tail` at `statePath`, through `temporaryPath`. */
export async function writeState(
  statePath: string,
  temporaryPath: string,
  manifest: Manifest,
  have: ChunkBitmap,
  tail = 0,
): Promise<void> {
  const state: SavedState = {
    version: STATE_VERSION,
    manifest,
    have: have.toBase64(),
    ...(tail > 0 ? { tail } : {}),
  };
  try {
    await Deno.writeTextFile(temporaryPath, JSON.stringify(state));
    await Deno.rename(temporaryPath, statePath);
  } catch (error) {
    await removeIfPresent(temporaryPath).catch(() => undefined);
    throw error;
  }
}

/** What was found at a state path. */
export type SavedStateRead =
  | { status: "ok"; state: SavedState }
  | { status: "missing" }
  | { status: "damaged" };

/** Reads a saved state; a missing or unreadable one says so. */
export async function readState(statePath: string): Promise<SavedStateRead> {
  let text: string;
  try {
    text = await Deno.readTextFile(statePath);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { status: "missing" };
    return { status: "damaged" };
  }
  try {
    const state = JSON.parse(text) as SavedState;
    if (
      state?.version === STATE_VERSION && typeof state.have === "string" &&
      typeof state.manifest === "object" && state.manifest !== null
    ) {
      return { status: "ok", state };
    }
  } catch {
    // Falls through: a state that does not parse is damaged.
  }
  return { status: "damaged" };
}

/** The saved bitmap, when it decodes and every chunk it claims lies within the part file. */
export function consistentBitmap(
  encoded: string,
  manifest: Manifest,
  partSize: number,
): ChunkBitmap | undefined {
  let have: ChunkBitmap;
  try {
    have = ChunkBitmap.fromBase64(
      encoded,
      chunkCount(manifest.size, manifest.chunkSize),
    );
  } catch {
    return undefined;
  }
  for (let seq = have.size - 1; seq >= 0; seq--) {
    if (!have.has(seq)) continue;
    const end = seq * manifest.chunkSize +
      chunkLength(seq, manifest.size, manifest.chunkSize);
    return end <= partSize ? have : undefined;
  }
  return have;
}

/** Whether a saved manifest describes the same file as `b` (so its chunks may be resumed). */
export function sameManifest(a: Manifest | undefined, b: Manifest): boolean {
  return a !== undefined && a.name === b.name && a.size === b.size &&
    a.chunkSize === b.chunkSize && a.mtimeMs === b.mtimeMs &&
    (a.sha256 === undefined || b.sha256 === undefined || a.sha256 === b.sha256);
}

/**
 * The saved tail, when it is a whole number of bytes shorter than the first
 * chunk `have` lacks and lies within the part file; else 0.
 */
export function consistentTail(
  tail: unknown,
  have: ChunkBitmap,
  manifest: Manifest,
  partSize: number,
): number {
  if (typeof tail !== "number" || !Number.isSafeInteger(tail) || tail <= 0) {
    return 0;
  }
  const seq = firstMissing(have);
  if (seq >= have.size) return 0;
  const start = seq * manifest.chunkSize;
  const length = chunkLength(seq, manifest.size, manifest.chunkSize);
  return tail < length && start + tail <= partSize ? tail : 0;
}

/** The first chunk `have` lacks (`have.size` when it lacks none). */
export function firstMissing(have: ChunkBitmap): number {
  let seq = 0;
  while (seq < have.size && have.has(seq)) seq++;
  return seq;
}

/**
 * What of a part file of `partSize` bytes a saved state lets a transfer of
 * `manifest` keep: the chunks held and the tail when the state describes
 * the same file and fits the part file; `needsVerification` when a part
 * file has no usable state (its chunks count only once checked); else
 * nothing (the part file starts afresh).
 */
export function resumable(
  saved: SavedStateRead,
  manifest: Manifest,
  partSize: number,
): { have?: ChunkBitmap; needsVerification: boolean; tail: number } {
  if (partSize > manifest.size) return { needsVerification: false, tail: 0 };
  if (saved.status === "ok" && sameManifest(saved.state.manifest, manifest)) {
    const have = consistentBitmap(saved.state.have, manifest, partSize);
    if (have === undefined) return { needsVerification: true, tail: 0 };
    const tail = consistentTail(saved.state.tail, have, manifest, partSize);
    return { have, needsVerification: false, tail };
  }
  return { needsVerification: saved.status !== "ok" && partSize > 0, tail: 0 };
}
