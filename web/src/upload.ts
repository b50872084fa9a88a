/// <reference lib="dom" />
/**
 * One file's resumable upload from the page, with tus-js-client (tus 1.0
 * at `/files/`): the file goes in chunks of {@linkcode CHUNK_SIZE}, each
 * one a `Blob` slice the browser streams from disk (never the whole file
 * in memory), and the request that completes the upload carries the
 * file's SHA-256 as `Repr-Digest`, so the server refuses bytes that do
 * not hash to what the browser read before the file takes its name. A
 * dropped connection or a restarted server is retried with growing
 * pauses, each retry asking the server where it stands (`HEAD`) and going
 * on from there.
 *
 * @module
 */

import { type DetailedError, type HttpRequest, Upload } from "tus-js-client";
import { authHeaders, digestOfField, reprDigest } from "./api.ts";

/**
 * Bytes per PATCH. Only the last one waits for the digest; each costs a
 * request and a sync on the server, so they are large.
 */
export const CHUNK_SIZE = 32 * 1024 * 1024;

/**
 * Files of at most this size go in the request that creates the upload
 * (one round trip each, for many small files); larger ones are created
 * first, so a connection cut during their first chunk still leaves an
 * upload to resume.
 */
const SMALL = 1024 * 1024;

/** Pauses before each retry in a row, in ms (reset whenever bytes get through). */
const RETRY_DELAYS = [
  0,
  500,
  1000,
  1000,
  2000,
  3000,
  5000,
  5000,
  10_000,
  10_000,
  15_000,
  30_000,
  30_000,
  60_000,
];

/** What an upload reports while it runs. */
export interface UploadEvents {
  /** Bytes sent so far (the server may not have them all yet). */
  onProgress(bytes: number): void;
  /** The server acknowledged `bytes` (written and synced). */
  onAccepted(bytes: number): void;
  /** The upload's URL, once the server made it. */
  onUrl(url: string): void;
  /** The server holds `offset` bytes of an upload being resumed. */
  onResumed(offset: number): void;
  /** A request failed and will be tried again. */
  onRetry(reason: string): void;
  /** The last request waits for the file's digest. */
  onAwaitingDigest(): void;
}

/** What to upload. */
export interface UploadSpec {
  file: Blob;
  /** The name to store it under. */
  name: string;
  /** An upload of it the server already began. */
  uploadUrl?: string;
  /** The whole file's SHA-256 (hex), once the browser has read it all. */
  digest(): Promise<string>;
}

/** A finished upload: the digest the server answered with. */
export interface UploadResult {
  serverSha256: string | undefined;
}

/** An upload that failed for good: why, and the HTTP status when there was one. */
export class UploadError extends Error {
  override name = "UploadError";
  constructor(message: string, readonly status: number, readonly code = "") {
    super(message);
  }
}

/** A running upload. */
export interface RunningUpload {
  readonly done: Promise<UploadResult>;
  /** Stops sending; the server keeps what it has. */
  pause(): void;
}

/** Why a request failed, in a user's words. */
function failureText(error: Error | DetailedError): UploadError {
  if (error instanceof UploadError) return error;
  const cause = "causingError" in error ? error.causingError : null;
  if (cause instanceof UploadError) return cause;
  const response = "originalResponse" in error ? error.originalResponse : null;
  if (!response) {
    return new UploadError(
      navigator.onLine === false
        ? "this device is offline"
        : "the server cannot be reached",
      0,
    );
  }
  const status = response.getStatus();
  try {
    const problem = JSON.parse(response.getBody());
    if (typeof problem.detail === "string") {
      return new UploadError(problem.detail, status, String(problem.code));
    }
  } catch {
    // Not a problem body.
  }
  return new UploadError(`the server answered ${status}`, status);
}

/** Whether a failure is worth trying again: no answer, a busy or failing server. */
function retriable(failure: UploadError): boolean {
  const { status } = failure;
  if (failure.code === LOCAL) return false;
  return status === 0 || status === 408 || status === 409 || status === 423 ||
    status >= 500;
}

/** The code of a failure on this side (the file could not be read): never retried. */
const LOCAL = "local";

/** Starts uploading `spec.file`. */
export function startUpload(
  spec: UploadSpec,
  events: UploadEvents,
): RunningUpload {
  const size = spec.file.size;
  let paused = false;
  /** Whether `req` carries the file's last bytes. */
  const completes = (req: HttpRequest) => {
    const method = req.getMethod();
    if (method === "POST") return size <= SMALL;
    if (method !== "PATCH") return false;
    return Number(req.getHeader("Upload-Offset")) + CHUNK_SIZE >= size;
  };
  let upload: Upload;
  let stop: (error: UploadError) => void;
  const done = new Promise<UploadResult>((resolve, reject) => {
    stop = reject;
    upload = new Upload(spec.file, {
      endpoint: new URL("/files/", location.href).href,
      ...(spec.uploadUrl ? { uploadUrl: spec.uploadUrl } : {}),
      metadata: { filename: spec.name },
      chunkSize: CHUNK_SIZE,
      retryDelays: RETRY_DELAYS,
      uploadDataDuringCreation: size <= SMALL,
      storeFingerprintForResuming: false,
      headers: authHeaders(),
      onBeforeRequest: async (req) => {
        if (!completes(req)) return;
        events.onAwaitingDigest();
        const sha256 = await spec.digest().catch((error: Error) => {
          throw new UploadError(error.message, 0, LOCAL);
        });
        if (paused) throw new UploadError("paused", 0, LOCAL);
        req.setHeader("Repr-Digest", reprDigest(sha256));
      },
      onAfterResponse: (req, res) => {
        if (req.getMethod() === "HEAD" && res.getStatus() < 300) {
          events.onResumed(Number(res.getHeader("Upload-Offset")));
        }
      },
      onProgress: (sent) => events.onProgress(sent),
      onChunkComplete: (_chunk, accepted) => events.onAccepted(accepted),
      onUploadUrlAvailable: () => events.onUrl(upload.url!),
      onShouldRetry: (error) => {
        const failure = failureText(error);
        const again = retriable(failure) && !paused;
        if (again) events.onRetry(failure.message);
        return again;
      },
      onSuccess: ({ lastResponse }) =>
        resolve({
          serverSha256: digestOfField(
            lastResponse.getHeader("Repr-Digest") ?? null,
          ),
        }),
      onError: (error) => reject(failureText(error)),
    });
    upload.start();
  });
  done.catch(() => undefined);
  return {
    done,
    pause() {
      paused = true;
      void upload.abort(false);
      stop(new UploadError("paused", 0, LOCAL));
    },
  };
}
