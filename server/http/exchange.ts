/**
 * One HTTP request as the handlers see it: the server's shared context,
 * the HTTP front door's settings, the request with its raw path, the peer;
 * and the one way a handler refuses (a log line and a problem response).
 *
 * @module
 */

import { ERROR_CODE } from "../../base/errors.ts";
import type { AuthThrottle } from "../../security/auth.ts";
import type { ServerContext } from "../context.ts";
import type { OpenUploads } from "./open_uploads.ts";
import { type Failure, problemResponse } from "./status.ts";

/** What the HTTP front door adds to the server's context. */
export interface HttpSettings {
  /** Requests must carry `Authorization: Bearer TOKEN`. */
  readonly token: string | undefined;
  /** Slows down addresses that failed to log in (shared with ftv/1). */
  readonly throttle: AuthThrottle;
  /** The one origin CORS lets in, when set. */
  readonly cors: string | undefined;
  /** A request body silent this long is dropped. */
  readonly idleTimeoutMs: number;
  /** An upload not written to for this long expires. */
  readonly partTtlMs: number;
  /** Aborted when the server stops. */
  readonly stopping: AbortSignal;
  /** Resumable uploads whose part file this process holds open. */
  readonly uploads: OpenUploads;
}

/** One request under way. */
export interface Exchange {
  readonly ctx: ServerContext;
  readonly http: HttpSettings;
  readonly request: Request;
  /** The request target's path as sent, still percent-encoded. */
  readonly path: string;
  /** The request target's query. */
  readonly query: URLSearchParams;
  /** `host:port` of the client, for log lines. */
  readonly peer: string;
  /** The client's address, for the login throttle. */
  readonly address: string;
}

/**
 * Logs `failure` as ftv/1 does (`Refused request from PEER: Cannot ACTION:
 * REASON`, INFO for a missing name, else WARNING) and answers it.
 */
export function refused(
  ex: Exchange,
  failure: Failure,
  action: string,
  options: { extra?: Record<string, unknown>; headers?: HeadersInit } = {},
): Response {
  const detail = `Cannot ${action}: ${failure.reason}`;
  const quiet = "code" in failure && failure.code === ERROR_CODE.notFound;
  ex.ctx.log.log(
    quiet ? "INFO" : "WARNING",
    `Refused HTTP request from ${ex.peer}: ${detail}`,
  );
  return problemResponse(failure, detail, options);
}
