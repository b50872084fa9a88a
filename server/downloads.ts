/**
 * Serving stored files on ftv/1: an ordinary get (offer, chunks, repair
 * rounds until the client has verified the file) and an eager get (a small
 * file sent whole at once, for a tree's pipelined download).
 *
 * @module
 */

import {
  ERROR_CODE,
  refusal,
  RemoteError,
  TransferError,
} from "../base/errors.ts";
import { chunkSizeOf } from "../engine/chunk_reader.ts";
import { chunkCount } from "../engine/chunks.ts";
import { ChunkCompressor } from "../engine/compression.ts";
import { sendChunks } from "../engine/sender.ts";
import type { FramedConnection } from "../net/connection.ts";
import {
  type ControlOf,
  DATA_FRAME_OVERHEAD,
  encodeData,
  type FileEntry,
  type GetMessage,
} from "../protocol.ts";
import { pathRefusal } from "../protocol/names.ts";
import { AUTO_GROUP, type FecMode } from "../engine/fec.ts";
import { parseShape } from "../engine/parity/shape.ts";
import { damagedRefusal } from "../store.ts";
import { MAX_SERVER_ROUNDS, type ServerContext } from "./context.ts";
import { refuse } from "./refuse.ts";

/** Answers a `get`: the file in chunks, or at once when it is eager. */
export async function sendDownload(
  ctx: ServerContext,
  fc: FramedConnection,
  get: GetMessage,
): Promise<void> {
  if (get.eager) return await sendEagerDownload(ctx, fc, get);
  const { store, log } = ctx;
  const what = `get ${JSON.stringify(get.name)}`;
  const refused = pathRefusal(get.name) ??
    await store.nameRefusal(get.name);
  if (refused) return refuse(ctx, fc, refused, what);
  const opened = await store.open(get.name);
  if (!opened) return refuse(ctx, fc, notFound(), what);
  using file = opened;
  const { entry, source } = file;
  if (entry.damaged) {
    return refuse(ctx, fc, damagedRefusal(entry.sha256), what);
  }
  const transferId = ctx.nextTransferId();
  const compression = get.compress ?? "none";
  const chunkSize = await chunkSizeOf(
    source,
    entry.size,
    compression,
    ctx.chunkSize,
  );
  let fec: FecMode;
  try {
    fec = fecModeOf(get);
  } catch (error) {
    return refuse(
      ctx,
      fc,
      refusal(ERROR_CODE.badRequest, (error as Error).message),
      what,
    );
  }
  await fc.send({
    ...offerOf(transferId, entry, chunkSize),
    earlyNack: true,
    ...(fec === "off" ? {} : { fecK: fec === "auto" ? AUTO_GROUP : fec.k }),
  });
  log.info(`File split into ${chunkCount(entry.size, chunkSize)} chunks`);
  try {
    const stats = await sendChunks(fc, source, {
      transferId,
      size: entry.size,
      chunkSize,
      sha256: entry.sha256,
      compression,
      simulator: ctx.faults,
      zeroChunks: ctx.zeroChunks === true,
      fec,
      guard: await store.guardFor(get.name, entry, log),
      maxRounds: MAX_SERVER_ROUNDS,
      log,
    });
    log.info(
      `Sent ${entry.name} to ${fc.peer}: verified after ${stats.attempts} round(s)`,
    );
  } catch (error) {
    await endedEarly(ctx, fc, get.name, error);
  }
}

/**
 * A download that ended without `verified`: the parity guard found a chunk
 * it could not rebuild, the client declined, or the client's whole-file
 * check failed (then the file is checked again). Anything else is thrown.
 */
async function endedEarly(
  ctx: ServerContext,
  fc: FramedConnection,
  name: string,
  error: unknown,
): Promise<void> {
  const { log } = ctx;
  if (error instanceof TransferError) {
    log.error(error.message);
    await fc.sendError(ERROR_CODE.damaged, error.message);
    return await recheckAfterMismatch(ctx, name);
  }
  if (!(error instanceof RemoteError)) throw error;
  if (error.code !== ERROR_CODE.digestMismatch) {
    return log.warn(`Client declined ${name}: ${error.message}`);
  }
  log.error(`Client gave up on ${name}: ${error.message}`);
  await recheckAfterMismatch(ctx, name);
}

/**
 * A client found the file's bytes do not hash to the digest it was offered:
 * the stored copy may have rotted. Hashes it again: damaged, it is marked so
 * (listed as damaged, refused until sent again); intact, the client's link
 * was to blame and the digest is confirmed.
 */
export async function recheckAfterMismatch(
  ctx: ServerContext,
  name: string,
): Promise<void> {
  const found = await ctx.store.recheck(name);
  if (found.kind === "damaged") {
    ctx.log.error(
      `Stored file ${name} is damaged: its bytes have SHA-256 ${found.actual}, not ${found.expected} as received; it is refused until sent again`,
    );
  } else if (found.kind === "intact") {
    ctx.log.info(
      `Stored file ${name} re-hashed after a client's mismatch: intact`,
    );
  }
}

/**
 * An eager get: a file of at most one chunk goes out at once as its
 * `offer` and data frame, queued like the replies to eager puts, and the
 * server reads the next request without waiting. The client checks the
 * bytes against the offer's SHA-256 and gets a damaged file the ordinary
 * way. A simulated loss damages the frame instead, so the framing holds.
 */
async function sendEagerDownload(
  ctx: ServerContext,
  fc: FramedConnection,
  get: Extract<GetMessage, { eager: true }>,
): Promise<void> {
  const { store, chunkSize, faults, log } = ctx;
  const what = `get ${JSON.stringify(get.name)}`;
  const syntax = pathRefusal(get.name);
  if (syntax) return refuse(ctx, fc, syntax, what);
  const read = await store.readSmall(get.name, chunkSize);
  if (read.kind === "refused") return refuse(ctx, fc, read.refusal, what);
  if (read.kind === "missing") return refuse(ctx, fc, notFound(), what);
  if (read.kind === "tooLarge") {
    return refuse(
      ctx,
      fc,
      refusal(
        ERROR_CODE.badRequest,
        "an eager get needs a file of at most one chunk",
      ),
      what,
    );
  }
  const { entry, bytes } = read;
  const transferId = ctx.nextTransferId();
  fc.queue(offerOf(transferId, entry, chunkSize));
  if (entry.size > 0) {
    const wire = new ChunkCompressor(get.compress ?? "none").encode(bytes);
    const frame = encodeData(transferId, 0, wire.payload, wire.flags);
    if ((faults?.fate(0) ?? "deliver") !== "deliver") {
      faults!.corrupt(frame.subarray(DATA_FRAME_OVERHEAD));
    }
    fc.queueFrame(frame);
  }
  log.debug(`Sent ${entry.name} eagerly (${entry.size} bytes)`);
}

function notFound() {
  return refusal(ERROR_CODE.notFound, "no such file on the server");
}

/** The `offer` of a stored file, sent in `chunkSize` chunks. */
function offerOf(
  transferId: number,
  entry: FileEntry,
  chunkSize: number,
): ControlOf<"offer"> {
  return {
    type: "offer",
    transferId,
    name: entry.name,
    size: entry.size,
    chunkSize,
    sha256: entry.sha256,
    mtimeMs: entry.mtimeMs,
    ...(entry.mode === undefined ? {} : { mode: entry.mode }),
  };
}

/** The parity a `get` asked for (its form was checked by the codec; a `K+M` over 255 shards throws). */
function fecModeOf(get: GetMessage): FecMode {
  const asked = get.eager ? undefined : get.fec;
  if (asked === undefined || asked === "off") return "off";
  return asked === "auto" ? "auto" : parseShape(asked);
}
