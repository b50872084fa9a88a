/**
 * tus 1.0 (https://tus.io/protocols/resumable-upload) at `/files/` and
 * `/uploads/<id>`: the core protocol with the creation,
 * creation-with-upload, termination, expiration and checksum extensions
 * (`Upload-Checksum` sha1 or sha256 per PATCH: bytes that do not match are
 * discarded and answered 460). Every answer carries `Tus-Resumable`.
 *
 * @module
 */

import { ERROR_CODE, refusal } from "../../base/errors.ts";
import { reprDigest } from "./download.ts";
import { type Exchange, refused } from "./exchange.ts";
import {
  CHECKSUM_ALGORITHMS,
  integerField,
  requiredOffset,
  uploadChecksum,
} from "./fields.ts";
import { type Failure, HTTP_FAILURE, httpFailure } from "./status.ts";
import {
  type Appended,
  appendTo,
  cancelById,
  createAnnounced,
  expiresFromNow,
  findUpload,
  uploadById,
} from "./upload_resource.ts";
import type { UploadRecord } from "../../store.ts";

/** The tus version served. */
export const TUS_VERSION = "1.0.0";
/** The tus extensions served. */
const EXTENSIONS =
  "creation,creation-with-upload,termination,expiration,checksum";
/** The content type of a tus PATCH (and of a POST carrying data). */
const OFFSET_STREAM = "application/offset+octet-stream";

/** Whether `request` speaks tus (it says `Tus-Resumable`). */
export function isTus(request: Request): boolean {
  return request.headers.has("tus-resumable");
}

function fail(
  ex: Exchange,
  failure: Failure,
  action: string,
  extra?: Record<string, unknown>,
) {
  return refused(ex, failure, action, {
    headers: { "Tus-Resumable": TUS_VERSION, "Tus-Version": TUS_VERSION },
    ...(extra ? { extra } : {}),
  });
}

/** `OPTIONS`: what this server speaks. */
export function tusOptions(ex: Exchange): Response {
  const headers: Record<string, string> = {
    "Tus-Resumable": TUS_VERSION,
    "Tus-Version": TUS_VERSION,
    "Tus-Extension": EXTENSIONS,
    "Tus-Checksum-Algorithm": CHECKSUM_ALGORITHMS.join(","),
  };
  const max = ex.ctx.limits.maxFileSize;
  if (max < Number.MAX_SAFE_INTEGER) headers["Tus-Max-Size"] = String(max);
  return new Response(null, { status: 204, headers });
}

/** Refuses a request whose `Tus-Resumable` is not the version served. */
export function tusVersionRefusal(ex: Exchange): Response | undefined {
  const version = ex.request.headers.get("tus-resumable");
  if (version === TUS_VERSION) return undefined;
  return fail(
    ex,
    refusal(
      ERROR_CODE.unsupportedVersion,
      `tus version ${JSON.stringify(version)} is not ${TUS_VERSION}`,
    ),
    "serve the request",
  );
}

/** `POST /files/`: creates an upload, and takes its first bytes when they come along. */
export async function tusCreate(ex: Exchange): Promise<Response> {
  const what = "create an upload";
  const { headers } = ex.request;
  if (headers.has("upload-defer-length")) {
    return fail(
      ex,
      httpFailure(
        HTTP_FAILURE.lengthRequired,
        "deferred lengths are not supported: give Upload-Length",
      ),
      what,
    );
  }
  const length = integerField(headers, "upload-length");
  if (!length.ok) return fail(ex, length.refusal, what);
  if (length.value === undefined) {
    return fail(
      ex,
      refusal(ERROR_CODE.badRequest, "a new upload needs Upload-Length"),
      what,
    );
  }
  const created = await createAnnounced(ex, length.value, "tus");
  if (!created.ok) return fail(ex, created.refusal, what);
  const record = created.value;
  const location = `/uploads/${record.id}`;
  const withData = headers.get("content-type") === OFFSET_STREAM;
  if (!withData && record.length > 0) {
    return new Response(null, {
      status: 201,
      headers: { ...common(ex), "Location": location },
    });
  }
  const appended = await append(ex, record, 0);
  if (appended instanceof Response) return appended;
  return new Response(null, {
    status: 201,
    headers: { ...appended, "Location": location },
  });
}

/** `HEAD /uploads/<id>`: the offset. */
export async function tusHead(ex: Exchange, id: string): Promise<Response> {
  const what = `resume upload ${id}`;
  const found = await uploadById(ex, id);
  if (!found.ok) return fail(ex, found.refusal, what);
  const { record, state } = found.value;
  const headers: Record<string, string> = {
    "Tus-Resumable": TUS_VERSION,
    "Upload-Offset": String(state.offset),
    "Upload-Length": String(record.length),
    "Upload-Expires": new Date(state.expiresMs).toUTCString(),
    "Cache-Control": "no-store",
  };
  if (record.metadata !== undefined) {
    headers["Upload-Metadata"] = record.metadata;
  }
  return new Response(null, { status: 200, headers });
}

/** `PATCH /uploads/<id>`: bytes at `Upload-Offset`. */
export async function tusPatch(ex: Exchange, id: string): Promise<Response> {
  const what = `write upload ${id}`;
  if (ex.request.headers.get("content-type") !== OFFSET_STREAM) {
    return fail(
      ex,
      httpFailure(HTTP_FAILURE.mediaType, `a PATCH must be ${OFFSET_STREAM}`),
      what,
    );
  }
  const offset = requiredOffset(ex.request.headers);
  if (!offset.ok) return fail(ex, offset.refusal, what);
  const found = await findUpload(ex, id);
  if (!found.ok) return fail(ex, found.refusal, what);
  const appended = await append(ex, found.value, offset.value);
  if (appended instanceof Response) return appended;
  return new Response(null, { status: 204, headers: appended });
}

/** `DELETE /uploads/<id>`: termination. */
export async function tusDelete(ex: Exchange, id: string): Promise<Response> {
  const what = `terminate upload ${id}`;
  const cancelled = await cancelById(ex, id);
  if (!cancelled.ok) return fail(ex, cancelled.refusal, what);
  return new Response(null, {
    status: 204,
    headers: { "Tus-Resumable": TUS_VERSION },
  });
}

/** Appends the body at `offset`: the answer's headers, or a failure's response. */
async function append(
  ex: Exchange,
  record: UploadRecord,
  offset: number,
): Promise<Record<string, string> | Response> {
  const what = `write upload ${record.id} of ${JSON.stringify(record.name)}`;
  const checksum = uploadChecksum(ex.request.headers);
  if (!checksum.ok) return fail(ex, checksum.refusal, what);
  const appended: Appended = await appendTo(ex, record, {
    offset,
    ...(checksum.value ? { checksum: checksum.value } : {}),
  });
  if (!appended.ok) return fail(ex, appended.failure, what, appended.extra);
  return {
    ...common(ex),
    "Upload-Offset": String(appended.offset),
    ...(appended.sha256 ? { "Repr-Digest": reprDigest(appended.sha256) } : {}),
  };
}

function common(ex: Exchange): Record<string, string> {
  return {
    "Tus-Resumable": TUS_VERSION,
    "Upload-Expires": new Date(expiresFromNow(ex)).toUTCString(),
  };
}
