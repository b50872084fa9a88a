/**
 * The web page on the HTTP front door: `GET /` and the page's files under
 * `/web/` (built into `web/assets.ts`, so they are served from memory
 * wherever ftv runs from), and `GET /api/info`, which the page asks first:
 * the version and whether a token is needed. None of these needs the
 * token, since none holds stored data; everything else still does.
 *
 * Every page file is sent with a strict Content-Security-Policy (this
 * origin only; WebAssembly for hashing), no referrer (a signed download
 * link never leaks through one) and no framing.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { VERSION } from "../../base/version.ts";
import { WEB_ASSETS, type WebAsset } from "../../web/assets.ts";
import { type Exchange, refused } from "./exchange.ts";
import { HTTP_FAILURE, httpFailure } from "./status.ts";

/** What a page file may do: load from this origin only, and compile the hashing WebAssembly. */
const POLICY = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "style-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const etags = new Map<string, string>();

function etagOf(path: string, asset: WebAsset): string {
  let etag = etags.get(path);
  if (etag === undefined) {
    const digest = createHash("sha256").update(asset.body).digest("hex");
    etag = `"${digest.slice(0, 32)}"`;
    etags.set(path, etag);
  }
  return etag;
}

/** The answer when `ex` asks for the page, one of its files or `/api/info`; else `undefined`. */
export function webResponse(ex: Exchange): Response | undefined {
  const path = ex.path === "/index.html" ? "/" : ex.path;
  const asset = WEB_ASSETS[path];
  if (!asset && path !== "/api/info") return undefined;
  const method = ex.request.method;
  if (method !== "GET" && method !== "HEAD") {
    return refused(
      ex,
      httpFailure(HTTP_FAILURE.method, `${method} is not one of GET, HEAD`),
      `serve ${JSON.stringify(ex.path)}`,
      { headers: { Allow: "GET, HEAD" } },
    );
  }
  if (!asset) return info(ex);
  const etag = etagOf(path, asset);
  const headers = {
    "Content-Type": asset.type,
    "Cache-Control": "no-cache",
    "ETag": etag,
    "Content-Security-Policy": POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
  };
  if (ex.request.headers.get("if-none-match") === etag) {
    return new Response(null, { status: 304, headers });
  }
  return new Response(method === "HEAD" ? null : asset.body, { headers });
}

/** `GET /api/info`: `{ name, version, token, chunkSize, maxFileSize? }`. */
function info(ex: Exchange): Response {
  const max = ex.ctx.limits.maxFileSize;
  const body = {
    name: "ftv",
    version: VERSION,
    token: ex.http.token !== undefined,
    chunkSize: ex.ctx.chunkSize,
    ...(max < Number.MAX_SAFE_INTEGER ? { maxFileSize: max } : {}),
  };
  return new Response(
    ex.request.method === "HEAD" ? null : JSON.stringify(body) + "\n",
    {
      headers: {
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
      },
    },
  );
}
