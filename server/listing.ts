/**
 * Answering `list` on ftv/1: stored files and folders, all or under a
 * prefix, one page at a time so a listing never exceeds the control cap.
 *
 * @module
 */

import type { FramedConnection } from "../net/connection.ts";
import { type ControlOf, LISTING_PAGE_ENTRIES } from "../protocol.ts";
import { pathRefusal } from "../protocol/names.ts";
import type { ServerContext } from "./context.ts";
import { refuse } from "./refuse.ts";

/** Sends one page of files-then-folders, from the request's `offset`. */
export async function answerList(
  ctx: ServerContext,
  fc: FramedConnection,
  request: ControlOf<"list">,
): Promise<void> {
  const { prefix } = request;
  const refused = prefix === undefined ? undefined : pathRefusal(prefix);
  if (refused) return refuse(ctx, fc, refused, "list");
  const { files, dirs } = await ctx.store.listTree(prefix);
  const total = files.length + dirs.length;
  const start = Math.min(request.offset ?? 0, total);
  const end = Math.min(start + LISTING_PAGE_ENTRIES, total);
  const pageDirs = dirs.slice(
    Math.max(0, start - files.length),
    Math.max(0, end - files.length),
  );
  await fc.send({
    type: "listing",
    files: files.slice(start, end),
    ...(pageDirs.length > 0 ? { dirs: pageDirs } : {}),
    ...(end < total ? { next: end } : {}),
  });
}
