/**
 * Download links that carry their own authorization, for a server with a
 * token: `GET /files/<name>?exp=<unix seconds>&sig=<hex>`, where `sig` is
 * HMAC-SHA256 keyed with the token over `ftv-link`, `exp` and the name (see
 * {@linkcode linkMessage}). A browser's download manager cannot send an
 * `Authorization` header, yet it resumes a download by asking the same URL
 * again with a `Range`: such a link works until `exp` for that one file and
 * for nothing else, and the token itself never appears in it. The web page
 * signs its links itself (it holds the token).
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Exchange } from "./exchange.ts";
import { nameOf } from "./names.ts";

/** The text a link's signature covers. */
export function linkMessage(name: string, expires: number): string {
  return `ftv-link\n${expires}\n${name}`;
}

/** The `sig` of a link to `name` that expires at `expires` (unix seconds). */
export function linkSignature(
  token: string,
  name: string,
  expires: number,
): string {
  return createHmac("sha256", token).update(linkMessage(name, expires))
    .digest("hex");
}

/**
 * What the link `ex` asks for says: `undefined` when it carries no
 * signature (or is no download), `true` when the signature is the token's
 * for this name and has not expired, `false` otherwise.
 */
export function signedLinkValid(
  ex: Exchange,
  token: string,
): boolean | undefined {
  const sig = ex.query.get("sig");
  const method = ex.request.method;
  if (sig === null || (method !== "GET" && method !== "HEAD")) return;
  if (!ex.path.startsWith("/files/")) return;
  const expires = Number(ex.query.get("exp"));
  const named = nameOf(ex.path.slice("/files/".length));
  if (!named.ok || !Number.isSafeInteger(expires)) return false;
  if (expires * 1000 <= Date.now() || !/^[0-9a-f]{64}$/.test(sig)) {
    return false;
  }
  const expected = linkSignature(token, named.value, expires);
  return timingSafeEqual(Buffer.from(sig, "hex"), Buffer.from(expected, "hex"));
}
