/**
 * CORS, off unless `--http-cors ORIGIN` names the one origin (or `*`) whose
 * pages may call the server from a browser: answers preflights and adds the
 * response headers a page needs to read (offsets, digests, locations).
 *
 * @module
 */

import type { Exchange } from "./exchange.ts";

/** Headers a page may read from a response. */
const EXPOSED = [
  "Location",
  "Upload-Offset",
  "Upload-Length",
  "Upload-Complete",
  "Upload-Limit",
  "Upload-Expires",
  "Upload-Metadata",
  "Upload-Draft-Interop-Version",
  "Tus-Resumable",
  "Tus-Version",
  "Tus-Extension",
  "Tus-Max-Size",
  "Tus-Checksum-Algorithm",
  "Repr-Digest",
  "ETag",
  "Content-Range",
  "Content-Disposition",
].join(", ");

const METHODS = "GET, HEAD, PUT, POST, PATCH, DELETE, OPTIONS";

/** The allowed origin `ex` comes from, when CORS lets it in. */
function allowedOrigin(ex: Exchange): string | undefined {
  const { cors } = ex.http;
  const origin = ex.request.headers.get("origin");
  if (cors === undefined || origin === null) return undefined;
  return cors === "*" || origin === cors ? origin : undefined;
}

/** The answer to a CORS preflight from an allowed origin, else `undefined`. */
export function corsPreflight(ex: Exchange): Response | undefined {
  const { request } = ex;
  const origin = allowedOrigin(ex);
  if (
    request.method !== "OPTIONS" || origin === undefined ||
    !request.headers.has("access-control-request-method")
  ) {
    return undefined;
  }
  return new Response(null, {
    status: 204,
    headers: {
      "Access-Control-Allow-Origin": origin,
      "Access-Control-Allow-Methods": METHODS,
      "Access-Control-Allow-Headers":
        request.headers.get("access-control-request-headers") ?? "",
      "Access-Control-Max-Age": "86400",
      "Vary": "Origin",
    },
  });
}

/** `response` with the CORS headers an allowed origin needs. */
export function withCors(ex: Exchange, response: Response): Response {
  const origin = allowedOrigin(ex);
  if (origin === undefined) return response;
  response.headers.set("Access-Control-Allow-Origin", origin);
  response.headers.set("Access-Control-Expose-Headers", EXPOSED);
  response.headers.append("Vary", "Origin");
  return response;
}
