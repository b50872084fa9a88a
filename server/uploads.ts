/**
 * Receiving files on ftv/1: an ordinary put (ready, chunks, repair rounds,
 * resume from a part file), an eager put (a small file pipelined whole), and
 * `mkdir` for a tree's folders.
 *
 * @module
 */

import { ERROR_CODE, isNoSpace, TransferError } from "../base/errors.ts";
import { receiveChunks, receiveEager } from "../engine/receiver.ts";
import type { FramedConnection } from "../net/connection.ts";
import type { ControlOf, PutMessage } from "../protocol.ts";
import { pathRefusal } from "../protocol/names.ts";
import { noSpaceRefusal } from "../store.ts";
import { uploadRefusal } from "./admission.ts";
import {
  MAX_SERVER_ROUNDS,
  type ServerContext,
  type TreeTally,
} from "./context.ts";
import { refuse } from "./refuse.ts";

/** An ordinary put: the part file resumes what an earlier run left. */
type OrdinaryPut = Extract<PutMessage, { eager?: false }>;
/** An eager put: at most one chunk, sent without waiting for `ready`. */
type EagerPut = Extract<PutMessage, { eager: true }>;

/**
 * Answers an ordinary `put`: admission, then the chunk exchange into a part
 * file. `"ended"` when the upload was refused midway (the disk filled up):
 * its chunks are still coming, so the session can only end.
 */
export async function receiveUpload(
  ctx: ServerContext,
  fc: FramedConnection,
  put: OrdinaryPut,
): Promise<"ended" | undefined> {
  const { store, log } = ctx;
  const refused = await uploadRefusal(ctx, put, { links: true }) ??
    store.prepare(put.name);
  if (refused) {
    await refuse(ctx, fc, refused, `store ${JSON.stringify(put.name)}`);
    return;
  }
  if (put.sha256 !== undefined && await holds(ctx, put, put.sha256)) {
    log.info(`${put.name} is already stored with that digest`);
    await fc.send({
      type: "verified",
      transferId: 0,
      sha256: put.sha256,
      bytes: put.size,
      held: true,
    });
    return;
  }
  ctx.busyNames.add(put.name);
  try {
    await receiveIntoStore(ctx, fc, put);
  } catch (error) {
    if (isNoSpace(error)) {
      log.error(`Cannot store ${put.name}: no space left on the disk`);
      await refuse(
        ctx,
        fc,
        noSpaceRefusal(put.name),
        `store ${JSON.stringify(put.name)}`,
      );
      return "ended";
    }
    if (!(error instanceof TransferError)) throw error;
    log.error(error.message);
  } finally {
    ctx.busyNames.delete(put.name);
  }
}

async function receiveIntoStore(
  ctx: ServerContext,
  fc: FramedConnection,
  put: OrdinaryPut,
): Promise<void> {
  const { log } = ctx;
  const claimed = await ctx.store.receive({
    name: put.name,
    size: put.size,
    chunkSize: put.chunkSize,
    mtimeMs: put.mtimeMs,
  }, {
    fsync: ctx.fsync,
    attributes: { mode: put.mode, mtimeMs: put.mtimeMs },
  });
  if (!claimed.ok) {
    return refuse(
      ctx,
      fc,
      claimed.refusal,
      `store ${JSON.stringify(put.name)}`,
    );
  }
  const store = claimed.value;
  try {
    log.info(
      `Receiving ${put.name} (${put.size} bytes in ${store.count} chunks${
        store.resumedChunks ? `, ${store.resumedChunks} already held` : ""
      })`,
    );
    const stats = await receiveChunks(fc, store, {
      transferId: ctx.nextTransferId(),
      maxRetries: Math.min(put.maxRetries, MAX_SERVER_ROUNDS),
      earlyNack: put.earlyNack === true,
      ...(put.fecK === undefined ? {} : { fecK: put.fecK }),
      log,
    });
    if (store.parityFailure) {
      log.warn(
        `Cannot keep parity for ${put.name}: ${store.parityFailure.message}`,
      );
    }
    log.info(`File received and saved as ${put.name}`);
    log.info(`Calculated checksum: ${stats.sha256}`);
  } catch (error) {
    // A file of one chunk has nothing worth resuming: its part file goes at
    // once. A larger one is kept to resume once there is room again, until
    // the part time to live (`--part-ttl`) runs out.
    if (isNoSpace(error) && store.count <= 1) await store.discard();
    throw error;
  } finally {
    await store.suspend().catch((error) =>
      log.warn(`Cannot save the resume state of ${put.name}: ${error.message}`)
    );
  }
}

/**
 * An eager put: a file of at most one chunk whose data follows without
 * waiting for `ready`, so a tree's small files stream back to back over one
 * connection. Received whole, checked, then stored in one go
 * (`Store.storeSmall`); answered `verified`, or `nack` round 0
 * when the bytes were damaged or a transfer of the name is under way (the
 * client sends the file again the normal way), or `error`. One DEBUG line
 * per file; the session logs a summary.
 */
export async function receiveEagerUpload(
  ctx: ServerContext,
  fc: FramedConnection,
  put: EagerPut,
  tree: TreeTally,
): Promise<void> {
  const { log } = ctx;
  const { transferId, sha256 } = put;
  const body = await receiveEager(fc, put);
  const what = `store ${JSON.stringify(put.name)}`;
  const refused = await uploadRefusal(ctx, put, { links: false });
  if (refused) return refuse(ctx, fc, refused, what);
  const stored = await ctx.store.storeSmall(put, body, { fsync: ctx.fsync });
  switch (stored.kind) {
    case "held":
      log.debug(`${put.name} is already stored with that digest`);
      fc.queue({
        type: "verified",
        transferId,
        sha256,
        bytes: put.size,
        held: true,
      });
      return;
    case "retry":
      if (stored.reason !== undefined) {
        log.warn(`Eager transfer of ${put.name} failed: ${stored.reason}`);
      }
      fc.queue({ type: "nack", transferId, seqs: [], round: 0 });
      return;
    case "refused":
      return refuse(
        ctx,
        fc,
        stored.refusal.code === ERROR_CODE.noSpace
          ? noSpaceRefusal(put.name)
          : stored.refusal,
        what,
      );
  }
  tree.files++;
  tree.bytes += put.size;
  log.debug(`Stored ${put.name} (${put.size} bytes, SHA-256 ${sha256})`);
  fc.queue({ type: "verified", transferId, sha256, bytes: put.size });
}

/** Creates a folder with its mode and mtime; answered like an eager put. */
export async function makeFolder(
  ctx: ServerContext,
  fc: FramedConnection,
  request: ControlOf<"mkdir">,
  tree: TreeTally,
): Promise<void> {
  const refused = pathRefusal(request.name) ??
    await ctx.store.makeFolder(request.name, request);
  if (refused) {
    return refuse(
      ctx,
      fc,
      refused,
      `make folder ${JSON.stringify(request.name)}`,
    );
  }
  tree.dirs++;
  fc.queue({
    type: "verified",
    transferId: request.transferId,
    sha256: "",
    bytes: 0,
  });
}

/**
 * Whether the stored file of that name already has the size and digest
 * offered, and is not damaged (a damaged copy is replaced by the upload).
 */
async function holds(
  ctx: ServerContext,
  put: { name: string; size: number },
  sha256: string,
): Promise<boolean> {
  const entry = await ctx.store.lookup(put.name);
  return entry?.size === put.size && entry.sha256 === sha256 && !entry.damaged;
}
