/**
 * Claiming an upload into an S3 store, on any server: the resume record of
 * the name decides. None: a new multipart upload and a new record (created
 * with `If-None-Match: *`). One whose lease runs, held by another server
 * (or by a transfer in this one): `busy`. One let go, or whose lease ran
 * out: taken over with `If-Match`; for the same file its parts are kept
 * (those the record lists and ListParts still shows with the same entity
 * tag and size) with its tail, else it is aborted and started afresh. Only
 * one of two servers racing for a record wins its write; the other is told
 * `busy`.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { ERROR_CODE, type Outcome, refusal } from "../../base/errors.ts";
import type { Logger } from "../../base/log.ts";
import { chunkCount, chunkLength } from "../../engine/chunks.ts";
import { type Manifest, sameManifest } from "../../engine/resume_state.ts";
import { ChunkBitmap } from "../../engine/bitmap.ts";
import type { Bucket, Part } from "./bucket.ts";
import { Lease } from "./lease.ts";
import { chunksPerPart } from "./part_rule.ts";
import type {
  HeldRecord,
  ResumeRecord,
  ResumeRecords,
} from "./resume_records.ts";
import { type ClaimedUpload, S3Upload } from "./upload.ts";

/** What a warm claim may reuse: the running digest an upload of this server left. */
export interface Warm {
  /** The record's entity tag as that upload last wrote it. */
  etag: string;
  hash: Hash;
  nextToHash: number;
}

/** What claiming needs from the store. */
export interface ClaimContext {
  bucket: Bucket;
  records: ResumeRecords;
  /** This server process's id, written as the owner. */
  owner: string;
  leaseMs: number;
  /** Where staging objects go (`PREFIX.ftv/staging/`). */
  stagingFolder: string;
  /** The running digests uploads of this process left, by name. */
  warm: Map<string, Warm>;
  /** Names this process holds now. */
  held: Set<string>;
  log: Logger;
}

/** Running digests of uploads let go that a server keeps for when they come back. */
const MAX_WARM = 1024;

const BUSY = (why: string) =>
  refusal(ERROR_CODE.busy, `another transfer of it is in progress (${why})`);

/** Claims the upload of `manifest` to `finalKey`; see the module docs. */
export async function claimUpload(
  ctx: ClaimContext,
  manifest: Manifest,
  finalKey: string,
  attributes: ClaimedUpload["attributes"],
): Promise<Outcome<S3Upload>> {
  const { name } = manifest;
  if (ctx.held.has(name)) return { ok: false, refusal: BUSY("on this server") };
  ctx.held.add(name);
  try {
    const found = await ctx.records.read(name);
    const now = Date.now();
    if (found && found.record.leaseUntil > now) {
      ctx.held.delete(name);
      return {
        ok: false,
        refusal: BUSY(
          `held by ${
            found.record.owner === ctx.owner ? "this" : "another"
          } server for ${
            Math.ceil((found.record.leaseUntil - now) / 1000)
          } s more`,
        ),
      };
    }
    const lease = new Lease(ctx.leaseMs);
    const claimed = found && sameManifest(found.record.manifest, manifest)
      ? await resume(ctx, found, lease)
      : await fresh(ctx, manifest, found, lease);
    if (!claimed) {
      ctx.held.delete(name);
      return { ok: false, refusal: BUSY("another server claimed it first") };
    }
    return {
      ok: true,
      value: new S3Upload({
        ...claimed,
        bucket: ctx.bucket,
        records: ctx.records,
        finalKey,
        attributes,
        lease,
        log: ctx.log,
        onRelease: (warm) => {
          ctx.held.delete(name);
          ctx.warm.delete(name);
          if (!warm) return;
          ctx.warm.set(name, warm);
          // The oldest go first: a digest kept is only a shortcut.
          for (const oldest of ctx.warm.keys()) {
            if (ctx.warm.size <= MAX_WARM) break;
            ctx.warm.delete(oldest);
          }
        },
      }),
    };
  } catch (error) {
    ctx.held.delete(name);
    throw error;
  }
}

type Found = Pick<
  ClaimedUpload,
  | "record"
  | "etag"
  | "parts"
  | "tailChunks"
  | "partialTail"
  | "hash"
  | "nextToHash"
>;

/** A new multipart upload of `manifest`, replacing what `old` was. */
async function fresh(
  ctx: ClaimContext,
  manifest: Manifest,
  old: HeldRecord | undefined,
  lease: Lease,
): Promise<Found | undefined> {
  const staging = `${ctx.stagingFolder}${crypto.randomUUID()}`;
  const uploadId = await ctx.bucket.createMultipart(staging);
  const record: ResumeRecord = {
    version: 1,
    manifest,
    uploadId,
    staging,
    partChunks: chunksPerPart(manifest.size, manifest.chunkSize),
    parts: [],
    have: new ChunkBitmap(chunkCount(manifest.size, manifest.chunkSize))
      .toBase64(),
    owner: ctx.owner,
    leaseUntil: lease.extend(),
    writeId: crypto.randomUUID(),
    updatedMs: Date.now(),
  };
  const etag = await ctx.records.write(manifest.name, record, old?.etag);
  if (etag === "conflict") {
    await ctx.bucket.abort(staging, uploadId).catch(() => undefined);
    return undefined;
  }
  if (old) await dropUpload(ctx.bucket, old.record, ctx.log);
  return {
    record,
    etag,
    parts: new Map(),
    tailChunks: new Map(),
    partialTail: undefined,
    hash: createHash("sha256"),
    nextToHash: 0,
  };
}

/**
 * Takes `found` over for the same file: its parts that the store still
 * holds as recorded, its tail, and (when this server wrote the record last)
 * the running digest it left.
 */
async function resume(
  ctx: ClaimContext,
  found: HeldRecord,
  lease: Lease,
): Promise<Found | undefined> {
  const old = found.record;
  const listed = await ctx.bucket.listParts(old.staging, old.uploadId);
  if (listed === undefined) {
    // The upload is gone (aborted by a sweep, or completed by a server that died before copying).
    return await fresh(ctx, old.manifest, found, lease);
  }
  const inStore = new Map(listed.map((part) => [part.number, part]));
  const parts = new Map<number, Part>();
  for (const part of old.parts) {
    const now = inStore.get(part.number);
    if (now?.etag === part.etag && now.size === part.size) {
      parts.set(part.number - 1, part);
    }
  }
  const record: ResumeRecord = {
    ...old,
    parts: [...parts.values()],
    owner: ctx.owner,
    leaseUntil: lease.extend(),
    writeId: crypto.randomUUID(),
    updatedMs: Date.now(),
  };
  const etag = await ctx.records.write(old.manifest.name, record, found.etag);
  if (etag === "conflict") return undefined;
  const tail = await readTail(ctx.bucket, old, parts);
  const warm = ctx.warm.get(old.manifest.name);
  ctx.warm.delete(old.manifest.name);
  const mine = warm !== undefined && warm.etag === found.etag &&
    old.owner === ctx.owner;
  const nothingHeld = parts.size === 0 && tail.chunks.size === 0;
  return {
    record,
    etag,
    parts,
    tailChunks: tail.chunks,
    partialTail: tail.partial,
    // Another server's parts cannot be hashed here: read back at the end.
    hash: mine ? warm.hash : nothingHeld ? createHash("sha256") : undefined,
    nextToHash: mine ? warm.nextToHash : 0,
  };
}

/** The tail object's chunks and partial chunk, when it is still whole and still needed. */
async function readTail(
  bucket: Bucket,
  record: ResumeRecord,
  parts: Map<number, Part>,
): Promise<{ chunks: Map<number, Uint8Array>; partial?: Uint8Array }> {
  const chunks = new Map<number, Uint8Array>();
  const tail = record.tail;
  if (!tail || parts.has(tail.part)) return { chunks };
  for (let index = 0; index < tail.part; index++) {
    if (!parts.has(index)) return { chunks }; // Of use only right after the parts held.
  }
  const response = await bucket.client.open({
    method: "GET",
    key: tail.key,
    headers: { "if-match": tail.etag },
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    return { chunks };
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (bytes.length !== tail.bytes) return { chunks };
  const { size, chunkSize } = record.manifest;
  const count = chunkCount(size, chunkSize);
  let at = 0;
  for (let seq = tail.part * record.partChunks; seq < count; seq++) {
    const length = chunkLength(seq, size, chunkSize);
    if (at + length > bytes.length) {
      return at < bytes.length
        ? { chunks, partial: bytes.slice(at) }
        : { chunks };
    }
    chunks.set(seq, bytes.slice(at, at + length));
    at += length;
  }
  return { chunks };
}

/** Abandons the multipart upload (or staging object) and tail of `record`. */
export async function dropUpload(
  bucket: Bucket,
  record: ResumeRecord,
  log: Logger,
): Promise<void> {
  try {
    await bucket.abort(record.staging, record.uploadId);
    await bucket.delete(record.staging);
    if (record.tail) await bucket.delete(record.tail.key);
  } catch (error) {
    log.warn(
      `Cannot remove the abandoned upload of ${record.manifest.name}: ${
        (error as Error).message
      }`,
    );
  }
}
