/**
 * The request header fields the HTTP front door reads, parsed strictly:
 * RFC 9530 digests (`Repr-Digest`, `Content-Digest`), tus's
 * `Upload-Checksum` and `Upload-Metadata`, structured-field booleans
 * (`Upload-Complete: ?1`) and non-negative integers (`Upload-Offset`).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { ERROR_CODE, type Outcome, refusal } from "../../base/errors.ts";

/** A checksum algorithm `Upload-Checksum` may name. */
export type ChecksumAlgorithm = "sha1" | "sha256";

/** The algorithms `Tus-Checksum-Algorithm` announces. */
export const CHECKSUM_ALGORITHMS: readonly ChecksumAlgorithm[] = [
  "sha1",
  "sha256",
];

function bad(
  reason: string,
): { ok: false; refusal: ReturnType<typeof refusal> } {
  return { ok: false, refusal: refusal(ERROR_CODE.badRequest, reason) };
}

/**
 * The SHA-256 (hex) a `Repr-Digest` or `Content-Digest` field gives
 * (`sha-256=:BASE64:`), `undefined` when neither is sent or neither names
 * sha-256; a malformed one is refused. With both, they must agree. A
 * request that carries part of a file (a PATCH) reads `Repr-Digest` only:
 * its `Content-Digest` would be that of the part.
 */
export function clientSha256(
  headers: Headers,
  fields: readonly string[] = ["repr-digest", "content-digest"],
): Outcome<string | undefined> {
  let found: string | undefined;
  for (const field of fields) {
    const value = headers.get(field);
    if (value === null) continue;
    for (const member of value.split(",")) {
      const match = /^\s*([a-z0-9-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*$/.exec(
        member,
      );
      if (!match) {
        return bad(`${field} ${JSON.stringify(value)} is not a digest field`);
      }
      if (match[1] !== "sha-256") continue;
      const bytes = Buffer.from(match[2]!, "base64");
      if (bytes.length !== 32) {
        return bad(`${field} has a sha-256 that is not 32 bytes`);
      }
      const hex = bytes.toString("hex");
      if (found !== undefined && found !== hex) {
        return bad(
          "Repr-Digest and Content-Digest give different sha-256 digests",
        );
      }
      found = hex;
    }
  }
  return { ok: true, value: found };
}

/** A tus `Upload-Checksum`: the algorithm and the digest of one PATCH's bytes. */
export interface UploadChecksum {
  algorithm: ChecksumAlgorithm;
  digest: Buffer;
}

/** `Upload-Checksum: ALGORITHM BASE64`, `undefined` when absent. */
export function uploadChecksum(
  headers: Headers,
): Outcome<UploadChecksum | undefined> {
  const value = headers.get("upload-checksum");
  if (value === null) return { ok: true, value: undefined };
  const match = /^\s*([a-z0-9-]+)\s+([A-Za-z0-9+/=]+)\s*$/.exec(value);
  if (!match) {
    return bad(`Upload-Checksum ${JSON.stringify(value)} is malformed`);
  }
  const algorithm = match[1] as ChecksumAlgorithm;
  if (!CHECKSUM_ALGORITHMS.includes(algorithm)) {
    return bad(
      `checksum algorithm ${JSON.stringify(match[1])} is not supported (only ${
        CHECKSUM_ALGORITHMS.join(", ")
      })`,
    );
  }
  return {
    ok: true,
    value: { algorithm, digest: Buffer.from(match[2]!, "base64") },
  };
}

/** tus `Upload-Metadata` (`key base64,key base64`) as a map; a malformed one is refused. */
export function uploadMetadata(
  value: string | null,
): Outcome<Map<string, string>> {
  const metadata = new Map<string, string>();
  if (value === null || value.trim() === "") {
    return { ok: true, value: metadata };
  }
  for (const pair of value.split(",")) {
    const match = /^\s*([^\s,]+)(?:\s+([A-Za-z0-9+/=]*))?\s*$/.exec(pair);
    if (!match) {
      return bad(`Upload-Metadata ${JSON.stringify(value)} is malformed`);
    }
    const text = Buffer.from(match[2] ?? "", "base64").toString("utf8");
    metadata.set(match[1]!, text);
  }
  return { ok: true, value: metadata };
}

/** The `filename` parameter of a `Content-Disposition` (`filename*` wins), if any. */
export function dispositionName(value: string | null): string | undefined {
  if (value === null) return undefined;
  const extended = /filename\*\s*=\s*UTF-8''([^;\s]+)/i.exec(value);
  if (extended) {
    try {
      return decodeURIComponent(extended[1]!);
    } catch {
      return undefined;
    }
  }
  return /filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(value)?.[1]?.replace(
    /\\(.)/g,
    "$1",
  ) ??
    /filename\s*=\s*([^;\s]+)/i.exec(value)?.[1];
}

/** A structured-field boolean (`?1`, `?0`), `undefined` when absent; anything else is refused. */
export function booleanField(
  headers: Headers,
  name: string,
): Outcome<boolean | undefined> {
  const value = headers.get(name);
  if (value === null) return { ok: true, value: undefined };
  if (value.trim() === "?1") return { ok: true, value: true };
  if (value.trim() === "?0") return { ok: true, value: false };
  return bad(`${name} must be ?0 or ?1, not ${JSON.stringify(value)}`);
}

/** A non-negative integer field, `undefined` when absent; anything else is refused. */
export function integerField(
  headers: Headers,
  name: string,
): Outcome<number | undefined> {
  const value = headers.get(name);
  if (value === null) return { ok: true, value: undefined };
  const number = Number(value.trim());
  if (!/^\s*\d{1,16}\s*$/.test(value) || !Number.isSafeInteger(number)) {
    return bad(`${name} must be a byte count, not ${JSON.stringify(value)}`);
  }
  return { ok: true, value: number };
}

/** `Upload-Offset`, which a PATCH must carry. */
export function requiredOffset(headers: Headers): Outcome<number> {
  const offset = integerField(headers, "upload-offset");
  if (!offset.ok || offset.value !== undefined) {
    return offset as Outcome<number>;
  }
  return bad("a PATCH needs Upload-Offset");
}
