/**
 * Resumable uploads as the IETF draft has them
 * (draft-ietf-httpbis-resumable-upload-05, interop version 6, and version
 * 5 of draft -03), as tus-js-client 4.3 (`protocol: "ietf-draft-05"`) and
 * Apple's URLSession speak them: `POST /files/` with `Upload-Complete`
 * creates an upload (its name from `Upload-Metadata` or
 * `Content-Disposition`), `HEAD` tells its offset, `PATCH` with
 * `Upload-Offset` and `Upload-Complete` appends, `DELETE` cancels, and
 * `OPTIONS` tells the limits (`Upload-Limit`). Deno.serve cannot send an
 * informational response, so the `104 Upload Resumption Supported` is not
 * sent: the upload's URL comes with the final response.
 *
 * @module
 */

import { ERROR_CODE, refusal } from "../../base/errors.ts";
import { reprDigest } from "./download.ts";
import { type Exchange, refused } from "./exchange.ts";
import { booleanField, integerField, requiredOffset } from "./fields.ts";
import { type Failure, HTTP_FAILURE, httpFailure } from "./status.ts";
import {
  appendTo,
  cancelById,
  createAnnounced,
  findUpload,
  uploadById,
} from "./upload_resource.ts";
import type { UploadRecord } from "../../store.ts";

/** The interop versions served (`Upload-Draft-Interop-Version`). */
const VERSIONS = ["5", "6"];
/** The content type of a PATCH from interop version 6 on. */
const PARTIAL_UPLOAD = "application/partial-upload";
/** The problem type of a PATCH at the wrong offset. */
const MISMATCHING_OFFSET =
  "https://iana.org/assignments/http-problem-types#mismatching-upload-offset";

/** Whether `request` speaks the draft (it says its interop version). */
export function isIetfDraft(request: Request): boolean {
  return request.headers.has("upload-draft-interop-version");
}

function version(ex: Exchange): string {
  return ex.request.headers.get("upload-draft-interop-version")!.trim();
}

function common(ex: Exchange): Record<string, string> {
  const max = ex.ctx.limits.maxFileSize;
  return {
    "Upload-Draft-Interop-Version": version(ex),
    "Upload-Limit": max < Number.MAX_SAFE_INTEGER
      ? `min-size=0, max-size=${max}`
      : "min-size=0",
  };
}

function fail(
  ex: Exchange,
  failure: Failure,
  action: string,
  extra?: Record<string, unknown>,
): Response {
  return refused(ex, failure, action, {
    headers: common(ex),
    ...(extra ? { extra } : {}),
  });
}

/** Refuses an interop version not served. */
export function draftVersionRefusal(ex: Exchange): Response | undefined {
  if (VERSIONS.includes(version(ex))) return undefined;
  return refused(
    ex,
    refusal(
      ERROR_CODE.unsupportedVersion,
      `interop version ${JSON.stringify(version(ex))} is not one of ${
        VERSIONS.join(", ")
      }`,
    ),
    "serve the request",
  );
}

/** `OPTIONS`: the limits. */
export function draftOptions(ex: Exchange): Response {
  return new Response(null, { status: 204, headers: common(ex) });
}

/** `POST /files/`: creates an upload and takes the bytes that come with it. */
export async function draftCreate(ex: Exchange): Promise<Response> {
  const what = "create an upload";
  const { headers } = ex.request;
  const complete = booleanField(headers, "upload-complete");
  if (!complete.ok) return fail(ex, complete.refusal, what);
  const length = integerField(headers, "upload-length");
  if (!length.ok) return fail(ex, length.refusal, what);
  const contentLength = integerField(headers, "content-length");
  const size = length.value ??
    (complete.value && contentLength.ok ? contentLength.value : undefined);
  if (size === undefined) {
    return fail(
      ex,
      httpFailure(
        HTTP_FAILURE.lengthRequired,
        "a new upload needs Upload-Length (deferred lengths are not supported)",
      ),
      what,
    );
  }
  const created = await createAnnounced(ex, size, "ietf");
  if (!created.ok) return fail(ex, created.refusal, what);
  const answer = await append(ex, created.value, 0, complete.value === true);
  if (answer.status >= 300) return answer;
  answer.headers.set("Location", `/uploads/${created.value.id}`);
  return new Response(null, { status: 201, headers: answer.headers });
}

/** `HEAD /uploads/<id>`: the offset. */
export async function draftHead(ex: Exchange, id: string): Promise<Response> {
  const what = `resume upload ${id}`;
  const found = await uploadById(ex, id);
  if (!found.ok) return fail(ex, found.refusal, what);
  const { record, state } = found.value;
  return new Response(null, {
    status: 204,
    headers: {
      ...common(ex),
      "Upload-Offset": String(state.offset),
      "Upload-Complete": state.offset === record.length ? "?1" : "?0",
      "Upload-Length": String(record.length),
      "Cache-Control": "no-store",
    },
  });
}

/** `PATCH /uploads/<id>`: bytes at `Upload-Offset`. */
export async function draftPatch(ex: Exchange, id: string): Promise<Response> {
  const what = `write upload ${id}`;
  const { headers } = ex.request;
  if (version(ex) !== "5" && headers.get("content-type") !== PARTIAL_UPLOAD) {
    return fail(
      ex,
      httpFailure(HTTP_FAILURE.mediaType, `a PATCH must be ${PARTIAL_UPLOAD}`),
      what,
    );
  }
  const offset = requiredOffset(headers);
  if (!offset.ok) return fail(ex, offset.refusal, what);
  const complete = booleanField(headers, "upload-complete");
  if (!complete.ok) return fail(ex, complete.refusal, what);
  const found = await findUpload(ex, id);
  if (!found.ok) return fail(ex, found.refusal, what);
  return await append(ex, found.value, offset.value, complete.value === true);
}

/** `DELETE /uploads/<id>`: cancels the upload. */
export async function draftDelete(ex: Exchange, id: string): Promise<Response> {
  const what = `cancel upload ${id}`;
  const cancelled = await cancelById(ex, id);
  if (!cancelled.ok) return fail(ex, cancelled.refusal, what);
  return new Response(null, { status: 204, headers: common(ex) });
}

/** Appends the body at `offset`; the answer. */
async function append(
  ex: Exchange,
  record: UploadRecord,
  offset: number,
  complete: boolean,
): Promise<Response> {
  const what = `write upload ${record.id} of ${JSON.stringify(record.name)}`;
  const appended = await appendTo(ex, record, { offset, complete });
  if (!appended.ok) {
    const mismatch = appended.extra?.["expected-offset"] !== undefined;
    return fail(ex, appended.failure, what, {
      ...(mismatch ? { type: MISMATCHING_OFFSET } : {}),
      ...appended.extra,
    });
  }
  return new Response(null, {
    status: 204,
    headers: {
      ...common(ex),
      "Upload-Offset": String(appended.offset),
      "Upload-Complete": appended.offset === record.length ? "?1" : "?0",
      ...(appended.sha256
        ? { "Repr-Digest": reprDigest(appended.sha256) }
        : {}),
    },
  });
}
