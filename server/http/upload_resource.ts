/**
 * Resumable uploads whatever the protocol (tus 1.0 or the IETF draft):
 * creating one (the one admission check, then its record), its offset,
 * appending a request body at an offset (with an optional per-request
 * checksum whose bytes count only when they match), finishing it (the
 * whole-file digest, then the final name) and cancelling it. The protocol
 * files only translate header fields to these calls and back.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  ERROR_CODE,
  isNoSpace,
  type Outcome,
  refusal,
} from "../../base/errors.ts";
import { pathRefusal } from "../../protocol/names.ts";
import {
  newUploadId,
  noSpaceRefusal,
  type Upload,
  type UploadProtocol,
  type UploadRecord,
} from "../../store.ts";
import { uploadRefusal } from "../admission.ts";
import { writeBody } from "./body_sink.ts";
import type { Exchange } from "./exchange.ts";
import {
  clientSha256,
  dispositionName,
  type UploadChecksum,
  uploadMetadata,
} from "./fields.ts";
import { type Failure, HTTP_FAILURE, httpFailure } from "./status.ts";

/** What a new upload announces. */
export interface UploadSpec {
  name: string;
  length: number;
  protocol: UploadProtocol;
  sha256?: string;
  metadata?: string;
  mtimeMs?: number;
  digestFollows?: boolean;
}

/** Where an upload stands. */
export interface UploadState {
  /** Bytes held, written and synced. */
  offset: number;
  /** When it expires unless written to. */
  expiresMs: number;
}

/** A failure with the fields its problem body adds. */
export interface AppendFailure {
  failure: Failure;
  extra?: Record<string, unknown>;
}

/** What an append did: the new offset, and the digest once the file took its name. */
export type Appended =
  | { ok: true; offset: number; sha256?: string }
  | ({ ok: false } & AppendFailure);

/** Creates an upload of `spec` after the one admission check; its record. */
export async function createUpload(
  ex: Exchange,
  spec: UploadSpec,
): Promise<Outcome<UploadRecord>> {
  const { ctx } = ex;
  const refused = pathRefusal(spec.name) ?? await supersede(ex, spec.name) ??
    await uploadRefusal(ctx, {
      name: spec.name,
      size: spec.length,
      chunkSize: ctx.chunkSize,
    }, { links: true }) ?? ctx.store.prepare(spec.name);
  if (refused) return { ok: false, refusal: refused };
  const record: UploadRecord = {
    id: newUploadId(),
    name: spec.name,
    length: spec.length,
    chunkSize: ctx.chunkSize,
    createdMs: Date.now(),
    protocol: spec.protocol,
    ...(spec.sha256 === undefined ? {} : { sha256: spec.sha256 }),
    ...(spec.metadata === undefined ? {} : { metadata: spec.metadata }),
    ...(spec.mtimeMs === undefined ? {} : { mtimeMs: spec.mtimeMs }),
    ...(spec.digestFollows ? { digestFollows: true } : {}),
  };
  await ex.ctx.store.records.save(record);
  ctx.log.info(
    `Upload ${record.id} of ${record.name} (${record.length} bytes) created for ${ex.peer}`,
  );
  return { ok: true, value: record };
}

/**
 * Creates an upload of `length` bytes named by the request's header fields
 * (see {@linkcode announcement}), with the whole-file digest its
 * `Repr-Digest` gives, if any.
 */
export async function createAnnounced(
  ex: Exchange,
  length: number,
  protocol: UploadProtocol,
): Promise<Outcome<UploadRecord>> {
  const { headers } = ex.request;
  const named = announcement(headers);
  if (!named.ok) return named;
  const sha256 = clientSha256(headers);
  if (!sha256.ok) return sha256;
  return await createUpload(ex, {
    name: named.value.name,
    length,
    protocol,
    ...(named.value.metadata === undefined
      ? {}
      : { metadata: named.value.metadata }),
    ...(sha256.value === undefined ? {} : { sha256: sha256.value }),
    ...(named.value.digestFollows ? { digestFollows: true } : {}),
  });
}

/**
 * Cancels the unfinished uploads of `name` that no request is writing (a
 * client whose creating request was cut never learnt their URL, and
 * creates another): the new upload replaces them. `busy` when one is
 * being written right now.
 */
async function supersede(ex: Exchange, name: string) {
  for (const { record } of await ex.ctx.store.records.all()) {
    if (record.name !== name) continue;
    const cancelled = await cancelUpload(ex, record);
    if (!cancelled.ok) return cancelled.refusal;
  }
  return undefined;
}

/** When `record` expires: its part time to live after it was last written. */
async function expiresAt(ex: Exchange, record: UploadRecord): Promise<number> {
  // No upload written yet: the record's age counts.
  const written = await ex.ctx.store.lastWritten(record.name) ?? 0;
  return Math.max(record.createdMs, written) + ex.http.partTtlMs;
}

/** The record of upload `id`, unless it is unknown or expired. */
export async function findUpload(
  ex: Exchange,
  id: string,
): Promise<Outcome<UploadRecord>> {
  const record = await ex.ctx.store.records.read(id);
  if (!record || Date.now() >= await expiresAt(ex, record)) {
    return {
      ok: false,
      refusal: refusal(
        ERROR_CODE.notFound,
        record ? "the upload expired" : "no such upload",
      ),
    };
  }
  return { ok: true, value: record };
}

/** The offset of `record`, from its claimed store. */
export async function uploadState(
  ex: Exchange,
  record: UploadRecord,
): Promise<Outcome<UploadState>> {
  const offset = await ex.http.uploads.heldBytes(record);
  if (!offset.ok) return offset;
  return {
    ok: true,
    value: { offset: offset.value, expiresMs: await expiresAt(ex, record) },
  };
}

/** Upload `id` and where it stands, unless it is unknown, expired or busy. */
export async function uploadById(
  ex: Exchange,
  id: string,
): Promise<Outcome<{ record: UploadRecord; state: UploadState }>> {
  const found = await findUpload(ex, id);
  if (!found.ok) return found;
  const state = await uploadState(ex, found.value);
  return state.ok
    ? { ok: true, value: { record: found.value, state: state.value } }
    : state;
}

/** Expiry of `record` now that it was written to. */
export function expiresFromNow(ex: Exchange): number {
  return Date.now() + ex.http.partTtlMs;
}

/** Removes an upload: its part file, state and record. */
export async function cancelUpload(
  ex: Exchange,
  record: UploadRecord,
): Promise<Outcome<void>> {
  const lease = await ex.http.uploads.acquire(record);
  if (!lease.ok) return lease;
  ex.http.uploads.forget(record.id);
  await lease.value.discard();
  await ex.ctx.store.records.remove(record.id);
  ex.ctx.log.info(
    `Upload ${record.id} of ${record.name} cancelled by ${ex.peer}`,
  );
  return { ok: true, value: undefined };
}

/** Finds upload `id` and removes it. */
export async function cancelById(
  ex: Exchange,
  id: string,
): Promise<Outcome<void>> {
  const found = await findUpload(ex, id);
  return found.ok ? await cancelUpload(ex, found.value) : found;
}

/** What an append request brings besides its body. */
export interface AppendRequest {
  /** Where the client says its bytes start. */
  offset: number;
  /** A checksum the body's bytes must match to count. */
  checksum?: UploadChecksum;
  /** The client says this request completes the upload. */
  complete?: boolean;
}

/**
 * Appends the request body to `record` at `request.offset`: the offset
 * must be the one held; with a checksum the bytes count only when they
 * match (else they are undone and refused); then a checkpoint (synced)
 * before the new offset is told; once every byte is held the file is
 * checked against the digests the client gave (at creation, and in the
 * `Repr-Digest` of the request that completes it: a browser knows the
 * digest only once it has read the whole file) and takes its name.
 */
export async function appendTo(
  ex: Exchange,
  record: UploadRecord,
  request: AppendRequest,
): Promise<Appended> {
  const given = clientSha256(ex.request.headers, ["repr-digest"]);
  if (!given.ok) return { ok: false, failure: given.refusal };
  const lease = await ex.http.uploads.acquire(record);
  if (!lease.ok) return { ok: false, failure: lease.refusal };
  const store = lease.value;
  let done = false;
  try {
    const refused = appendRefusal(ex, store, request);
    if (refused) return { ok: false, ...refused };
    const appended = await appendBody(ex, store, request);
    if (!appended.ok || appended.offset < record.length) return appended;
    if (
      record.digestFollows && record.sha256 === undefined &&
      given.value === undefined
    ) {
      return appended; // Every byte held; the name waits for the digest.
    }
    done = true;
    return await finish(ex, record, store, given.value);
  } catch (error) {
    if (!isNoSpace(error)) throw error;
    ex.ctx.log.error(`Cannot store ${record.name}: no space left on the disk`);
    return { ok: false, failure: noSpaceRefusal(record.name) };
  } finally {
    if (!done) ex.http.uploads.release(record.id);
  }
}

/** Why the body may not be appended (before a byte of it is read). */
function appendRefusal(
  ex: Exchange,
  store: Upload,
  request: AppendRequest,
): AppendFailure | undefined {
  const held = store.heldBytes;
  if (request.offset !== held) {
    return {
      failure: httpFailure(
        HTTP_FAILURE.offsetMismatch,
        `the upload holds ${held} bytes, not ${request.offset}`,
      ),
      extra: { "expected-offset": held, "provided-offset": request.offset },
    };
  }
  const length = Number(ex.request.headers.get("content-length") ?? NaN);
  const size = store.manifest.size;
  if (Number.isSafeInteger(length) && held + length > size) {
    return {
      failure: refusal(
        ERROR_CODE.tooLarge,
        `${length} bytes at offset ${held} run past the upload's ${size} bytes`,
      ),
    };
  }
  if (
    request.complete && Number.isSafeInteger(length) && held + length !== size
  ) {
    return {
      failure: refusal(
        ERROR_CODE.badRequest,
        `${length} bytes at offset ${held} do not complete the upload's ${size} bytes`,
      ),
    };
  }
  return undefined;
}

/** Bytes of a long request body between checkpoints. */
const CHECKPOINT_BYTES = 64 * 1024 * 1024;

/** Streams the body in; with a checksum, undoes it unless it matches. */
async function appendBody(
  ex: Exchange,
  store: Upload,
  request: AppendRequest,
): Promise<Appended> {
  const { checksum } = request;
  const snapshot = checksum ? await store.snapshot() : undefined;
  const hash = checksum ? createHash(checksum.algorithm) : undefined;
  const written = await writeBody(store, ex.request.body, {
    idleTimeoutMs: ex.http.idleTimeoutMs,
    signal: ex.http.stopping,
    // With a checksum, no byte counts until the whole request checked out.
    ...(hash
      ? { onBytes: (bytes) => hash.update(bytes) }
      : { checkpointEvery: CHECKPOINT_BYTES }),
  });
  if (snapshot && hash && checksum) {
    const matches = written.end === "complete" &&
      hash.digest().equals(checksum.digest);
    if (!matches) {
      await store.settle(snapshot, true);
      await store.checkpoint();
      return {
        ok: false,
        failure: httpFailure(
          HTTP_FAILURE.checksumMismatch,
          written.end === "complete"
            ? `the ${written.bytes} bytes sent do not have the ${checksum.algorithm} checksum given; they were discarded`
            : "the request ended before its checksum could be checked; its bytes were discarded",
        ),
      };
    }
    await store.settle(snapshot, false);
  }
  await store.checkpoint();
  return endOf(written.end, store.heldBytes, store.manifest.size);
}

/** The outcome of a body that ended as `end`, the store holding `offset`. */
function endOf(end: string, offset: number, size: number): Appended {
  if (end === "too_long") {
    return {
      ok: false,
      failure: refusal(
        ERROR_CODE.tooLarge,
        `the body runs past the upload's ${size} bytes`,
      ),
    };
  }
  if (end === "idle") {
    return {
      ok: false,
      failure: httpFailure(
        HTTP_FAILURE.timeout,
        `the body went silent at byte ${offset}`,
      ),
    };
  }
  return { ok: true, offset };
}

/**
 * Every byte is held: checks the whole-file digest against the ones the
 * client gave (at creation, and with the completing request), then the
 * file takes its name and the record goes. A mismatch discards the upload.
 */
async function finish(
  ex: Exchange,
  record: UploadRecord,
  store: Upload,
  given: string | undefined,
): Promise<Appended> {
  const { store: files, log } = ex.ctx;
  ex.http.uploads.forget(record.id);
  const sha256 = await store.digest();
  const expected = [record.sha256, given].find((sha) =>
    sha !== undefined && sha !== sha256
  );
  if (expected !== undefined) {
    await store.discard();
    await ex.ctx.store.records.remove(record.id);
    return {
      ok: false,
      failure: refusal(
        ERROR_CODE.digestMismatch,
        `the bytes received have SHA-256 ${sha256}, not ${expected} as announced; nothing was stored`,
      ),
      extra: { expected, actual: sha256 },
    };
  }
  await store.finalize();
  warnParity(ex, store);
  await files.records.remove(record.id);
  await files.flush();
  log.info(`File received over HTTP and saved as ${record.name}`);
  log.info(`Calculated checksum: ${sha256}`);
  return { ok: true, offset: record.length, sha256 };
}

/** What a new upload announces in its header fields. */
interface Announcement {
  /** The metadata's `filename` (or `name`), else a `Content-Disposition`'s `filename`. */
  name: string;
  /** The tus `Upload-Metadata` as sent. */
  metadata: string | undefined;
  /** Metadata `digest-follows: sha-256`: see {@linkcode UploadRecord.digestFollows}. */
  digestFollows: boolean;
}

/** What a new upload announces (its name faces the ftv/1 name rules). */
export function announcement(headers: Headers): Outcome<Announcement> {
  const raw = headers.get("upload-metadata");
  const metadata = uploadMetadata(raw);
  if (!metadata.ok) return metadata;
  const name = metadata.value.get("filename") ?? metadata.value.get("name") ??
    dispositionName(headers.get("content-disposition"));
  if (name === undefined) {
    return {
      ok: false,
      refusal: refusal(
        ERROR_CODE.badName,
        "a new upload needs a name: Upload-Metadata filename, or Content-Disposition with a filename",
      ),
    };
  }
  const refused = pathRefusal(name);
  if (refused) return { ok: false, refusal: refused };
  const follows = metadata.value.get("digest-follows");
  if (follows !== undefined && follows !== "sha-256") {
    return {
      ok: false,
      refusal: refusal(
        ERROR_CODE.badRequest,
        `digest-follows ${JSON.stringify(follows)} is not sha-256`,
      ),
    };
  }
  return {
    ok: true,
    value: {
      name,
      metadata: raw ?? undefined,
      digestFollows: follows !== undefined,
    },
  };
}

/** Logs why a stored file has no parity, when its parity could not be kept. */
export function warnParity(ex: Exchange, store: Upload): void {
  if (store.parityFailure) {
    ex.ctx.log.warn(
      `Cannot keep parity for ${store.manifest.name}: ${store.parityFailure.message}`,
    );
  }
}
