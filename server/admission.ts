/**
 * The one admission check of an upload: a name passes it before anything is
 * written, on every front door. Each refusal is named by its code
 * (`bad_name`, `too_large`, `bad_request`, `busy`).
 *
 * @module
 */

import { ERROR_CODE, type Refusal, refusal } from "../base/errors.ts";
import { chunkSizeRefusal } from "../engine/chunks.ts";
import { pathRefusal } from "../protocol/names.ts";
import type { ServerContext } from "./context.ts";

/** What an upload announces before its bytes. */
export interface UploadRequest {
  /** The name to store it under. */
  name: string;
  /** Its size in bytes. */
  size: number;
  /** Its chunk size. */
  chunkSize: number;
}

/**
 * Why `upload` may not start, or `undefined` when it may: the name's
 * syntax, then (with `links`) symbolic links on the way, then the size
 * limits and the chunk size, then another upload of the same name under way.
 * A tree's eager puts skip `links` and rely on
 * `Store.storeSmall`, which finds the same links cheaper.
 */
export async function uploadRefusal(
  ctx: ServerContext,
  upload: UploadRequest,
  options: { links: boolean },
): Promise<Refusal | undefined> {
  const name = pathRefusal(upload.name) ??
    (options.links ? await ctx.store.nameRefusal(upload.name) : undefined);
  if (name) return name;
  return await sizeRefusal(ctx, upload) ?? busyRefusal(ctx, upload.name);
}

/** Why `upload` does not fit the server's limits, or `undefined` when it does. */
async function sizeRefusal(
  ctx: ServerContext,
  upload: UploadRequest,
): Promise<Refusal | undefined> {
  const { maxFileSize, maxTotalBytes } = ctx.limits;
  if (upload.size > maxFileSize) {
    return refusal(
      ERROR_CODE.tooLarge,
      `${upload.size} bytes exceeds the ${maxFileSize}-byte file limit`,
    );
  }
  if (maxTotalBytes < Number.MAX_SAFE_INTEGER) {
    const stored = await ctx.store.totalBytes();
    if (stored + upload.size > maxTotalBytes) {
      return refusal(
        ERROR_CODE.tooLarge,
        `${upload.size} more bytes would exceed the ${maxTotalBytes}-byte storage limit (${stored} used)`,
      );
    }
  }
  return chunkSizeRefusal(upload.chunkSize, upload.size);
}

/** A `busy` refusal when this process is receiving `name` already. */
export function busyRefusal(
  ctx: ServerContext,
  name: string,
): Refusal | undefined {
  return ctx.busyNames.has(name)
    ? refusal(ERROR_CODE.busy, "another upload of it is in progress")
    : undefined;
}
