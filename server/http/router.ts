/**
 * The HTTP(S) front door (`ftv server --http PORT`): a `Deno.serve`
 * listener beside the ftv/1 one, on the same store, chunk store and
 * resume state, names, limits and token. Routes:
 *
 * - `GET`/`HEAD /files/<name>`: a stored file (see `download.ts`);
 * - `PUT /files/<name>`: a whole upload (see `put_upload.ts`);
 * - `POST /files/`: a resumable upload, tus 1.0 (`tus.ts`) or the IETF
 *   draft (`ietf_draft.ts`), continued at `/uploads/<id>` with `HEAD`,
 *   `PATCH` and `DELETE`;
 * - `GET /api/list?path=PREFIX`: what `ftv list --json` prints;
 * - `GET /`, `/web/*` and `/api/info`: the web page (`web.ts`), without
 *   the token;
 * - `OPTIONS`: what the server speaks, and CORS preflights (`cors.ts`).
 *
 * @module
 */

import { ERROR_CODE, refusal } from "../../base/errors.ts";
import { pathRefusal } from "../../protocol/names.ts";
import type { ServerContext } from "../context.ts";
import { authRefusal } from "./auth.ts";
import { corsPreflight, withCors } from "./cors.ts";
import { serveDownload } from "./download.ts";
import { type Exchange, type HttpSettings, refused } from "./exchange.ts";
import {
  draftCreate,
  draftDelete,
  draftHead,
  draftOptions,
  draftPatch,
  draftVersionRefusal,
  isIetfDraft,
} from "./ietf_draft.ts";
import { nameOf } from "./names.ts";
import { receivePut } from "./put_upload.ts";
import { HTTP_FAILURE, httpFailure, problemResponse } from "./status.ts";
import {
  tusCreate,
  tusDelete,
  tusHead,
  tusOptions,
  tusPatch,
  tusVersionRefusal,
} from "./tus.ts";
import { webResponse } from "./web.ts";

/** Most bytes of request header fields taken (names and values). */
const MAX_HEADER_BYTES = 64 * 1024;

/** Where and how the HTTP front door listens. */
export interface HttpListen {
  host: string;
  port: number;
  /** TLS with this certificate and key (PEM): HTTPS, HTTP/2 where negotiated. */
  tls?: { cert: string; key: string };
}

/** A running HTTP front door. */
export interface HttpFront {
  readonly addr: Deno.NetAddr;
  /** Stops accepting, waits for requests under way, lets go of open uploads. */
  close(): Promise<void>;
}

/** Starts the HTTP front door of a server whose handlers share `ctx`. */
export function startHttp(
  ctx: ServerContext,
  http: HttpSettings,
  listen: HttpListen,
): HttpFront {
  const server = Deno.serve({
    hostname: listen.host,
    port: listen.port,
    ...(listen.tls ?? {}),
    onListen: () => {},
    onError: (error) => {
      ctx.log.error(`HTTP request failed: ${(error as Error).message}`);
      return problemResponse(
        refusal(ERROR_CODE.internal, "internal error"),
        "Cannot serve the request: internal error",
      );
    },
  }, (request, info) => {
    const target = request.url.slice(
      request.url.indexOf("/", request.url.indexOf("://") + 3),
    );
    const query = target.indexOf("?");
    const remote = info.remoteAddr;
    const ex: Exchange = {
      ctx,
      http,
      request,
      path: query === -1 ? target : target.slice(0, query),
      query: new URLSearchParams(query === -1 ? "" : target.slice(query + 1)),
      peer: `${remote.hostname}:${remote.port}`,
      address: remote.hostname,
    };
    return route(ex).then((response) => withCors(ex, response));
  });
  return {
    addr: server.addr,
    async close() {
      await server.shutdown();
      await http.uploads.closeAll();
    },
  };
}

/** Answers one request. */
async function route(ex: Exchange): Promise<Response> {
  const { request, path } = ex;
  let headerBytes = 0;
  request.headers.forEach((value, name) =>
    headerBytes += name.length + value.length
  );
  if (headerBytes > MAX_HEADER_BYTES) {
    return refused(
      ex,
      httpFailure(
        HTTP_FAILURE.headers,
        `${headerBytes} bytes of header fields exceed ${MAX_HEADER_BYTES}`,
      ),
      "serve the request",
    );
  }
  const preflight = corsPreflight(ex);
  if (preflight) return preflight;
  if (request.method === "OPTIONS") {
    return isIetfDraft(request) ? draftOptions(ex) : tusOptions(ex);
  }
  const page = webResponse(ex);
  if (page) return page;
  const denied = await authRefusal(ex);
  if (denied) return denied;
  if (path === "/files/" || path === "/files") return await collection(ex);
  if (path.startsWith("/files/")) {
    return await file(ex, path.slice("/files/".length));
  }
  if (path.startsWith("/uploads/")) {
    return await upload(ex, path.slice("/uploads/".length));
  }
  if (path === "/api/list") return await list(ex);
  return refused(
    ex,
    refusal(
      ERROR_CODE.notFound,
      `nothing is served at ${JSON.stringify(path)}`,
    ),
    "serve the request",
  );
}

function methodRefusal(ex: Exchange, allow: string): Response {
  return refused(
    ex,
    httpFailure(
      HTTP_FAILURE.method,
      `${ex.request.method} is not one of ${allow}`,
    ),
    `serve ${JSON.stringify(ex.path)}`,
    { headers: { Allow: allow } },
  );
}

/** `/files/<name>`. */
async function file(ex: Exchange, encoded: string): Promise<Response> {
  const named = nameOf(encoded);
  const method = ex.request.method;
  if (!named.ok) {
    const verb = method === "PUT" ? "store" : "get";
    return refused(ex, named.refusal, `${verb} ${JSON.stringify(encoded)}`);
  }
  if (method === "GET" || method === "HEAD") {
    return await serveDownload(ex, named.value);
  }
  if (method === "PUT") return await receivePut(ex, named.value);
  return methodRefusal(ex, "GET, HEAD, PUT");
}

/** `/files/`: a new resumable upload. */
async function collection(ex: Exchange): Promise<Response> {
  if (ex.request.method !== "POST") return methodRefusal(ex, "POST");
  if (isIetfDraft(ex.request)) {
    return draftVersionRefusal(ex) ?? await draftCreate(ex);
  }
  return tusVersionRefusal(ex) ?? await tusCreate(ex);
}

/** `/uploads/<id>`, in the protocol the request speaks. */
async function upload(ex: Exchange, id: string): Promise<Response> {
  const override = ex.request.headers.get("x-http-method-override");
  const method = ex.request.method === "POST" && override
    ? override.toUpperCase()
    : ex.request.method;
  if (isIetfDraft(ex.request)) {
    const refusedVersion = draftVersionRefusal(ex);
    if (refusedVersion) return refusedVersion;
    if (method === "HEAD") return await draftHead(ex, id);
    if (method === "PATCH") return await draftPatch(ex, id);
    if (method === "DELETE") return await draftDelete(ex, id);
    return methodRefusal(ex, "HEAD, PATCH, DELETE");
  }
  const refusedVersion = tusVersionRefusal(ex);
  if (refusedVersion) return refusedVersion;
  if (method === "HEAD") return await tusHead(ex, id);
  if (method === "PATCH") return await tusPatch(ex, id);
  if (method === "DELETE") return await tusDelete(ex, id);
  return methodRefusal(ex, "HEAD, PATCH, DELETE");
}

/** `GET /api/list?path=PREFIX`: `{ files, dirs? }`, as `ftv list --json` prints. */
async function list(ex: Exchange): Promise<Response> {
  if (ex.request.method !== "GET" && ex.request.method !== "HEAD") {
    return methodRefusal(ex, "GET, HEAD");
  }
  const prefix = ex.query.get("path") ?? undefined;
  const bad = prefix === undefined || prefix === ""
    ? undefined
    : pathRefusal(prefix);
  if (bad) return refused(ex, bad, "list");
  const { files, dirs } = await ex.ctx.store.listTree(prefix || undefined);
  const body = JSON.stringify(dirs.length > 0 ? { files, dirs } : { files });
  return new Response(ex.request.method === "HEAD" ? null : body + "\n", {
    headers: {
      "Content-Type": "application/json",
      "Cache-Control": "no-store",
    },
  });
}
