/**
 * The one mapping from ftv's failures to HTTP: the status of every
 * {@linkcode ERROR_CODE}, the failures only HTTP has (an offset or a
 * checksum that does not match, a missing length...), and the problem
 * details body (RFC 9457) each failure carries.
 *
 * @module
 */

import { ERROR_CODE, type ErrorCode, type Refusal } from "../../base/errors.ts";

/** The HTTP status of each refusal code. */
export const STATUS_OF_CODE: Readonly<Record<ErrorCode, number>> = {
  [ERROR_CODE.badRequest]: 400,
  [ERROR_CODE.badName]: 400,
  [ERROR_CODE.notFound]: 404,
  // 423 Locked: tus clients retry it, as they should a name being uploaded.
  [ERROR_CODE.busy]: 423,
  [ERROR_CODE.unauthorized]: 401,
  [ERROR_CODE.tooLarge]: 413,
  [ERROR_CODE.noSpace]: 507,
  // Gone until it is sent again; never served as if it were good.
  [ERROR_CODE.damaged]: 410,
  [ERROR_CODE.unsupportedVersion]: 412,
  [ERROR_CODE.digestMismatch]: 400,
  [ERROR_CODE.tooManyRetries]: 500,
  [ERROR_CODE.protocol]: 400,
  [ERROR_CODE.internal]: 500,
};

/** Failures only HTTP has: their code in the problem body and their status. */
export const HTTP_FAILURE = {
  /** The `Upload-Offset` of a PATCH is not the upload's offset. */
  offsetMismatch: { code: "offset_mismatch", status: 409 },
  /** A PATCH's `Upload-Checksum` does not match its bytes (tus checksum extension). */
  checksumMismatch: { code: "checksum_mismatch", status: 460 },
  /** An upload without a length. */
  lengthRequired: { code: "length_required", status: 411 },
  /** A PATCH of the wrong content type. */
  mediaType: { code: "unsupported_media_type", status: 415 },
  /** A range that lies past the end of the file. */
  range: { code: "range_not_satisfiable", status: 416 },
  /** A method the resource does not take. */
  method: { code: "method_not_allowed", status: 405 },
  /** Request headers over the limit. */
  headers: { code: "headers_too_large", status: 431 },
  /** A request body that went silent for the idle timeout. */
  timeout: { code: "request_timeout", status: 408 },
  /** A precondition (`If-Match`) that does not hold. */
  precondition: { code: "precondition_failed", status: 412 },
} as const;

/** One of {@linkcode HTTP_FAILURE}'s kinds. */
export type HttpFailureKind = typeof HTTP_FAILURE[keyof typeof HTTP_FAILURE];

/** A failure to answer: a refusal from the store's rules, or one only HTTP has. */
export type Failure =
  | Refusal
  | { readonly kind: HttpFailureKind; readonly reason: string };

/** The status and code `failure` travels with. */
export function statusOf(failure: Failure): { status: number; code: string } {
  if ("kind" in failure) return failure.kind;
  return { status: STATUS_OF_CODE[failure.code], code: failure.code };
}

/** Builds an HTTP-only {@linkcode Failure}. */
export function httpFailure(kind: HttpFailureKind, reason: string): Failure {
  return { kind, reason };
}

/**
 * The response for `failure`: its status and a problem details body
 * (`status`, `code`, `detail`, and `extra` fields), never cached.
 */
export function problemResponse(
  failure: Failure,
  detail: string,
  options: { extra?: Record<string, unknown>; headers?: HeadersInit } = {},
): Response {
  const { status, code } = statusOf(failure);
  const headers = new Headers(options.headers);
  headers.set("Content-Type", "application/problem+json");
  headers.set("Cache-Control", "no-store");
  const body = JSON.stringify({ status, code, detail, ...options.extra });
  return new Response(body + "\n", { status, headers });
}
