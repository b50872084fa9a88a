/// <reference lib="dom" />
/**
 * One file's resumable upload from the page, with tus-js-client (tus 1.0
 * at `/files/`). A large file goes in one PATCH whose body is the `File`
 * itself: the browser streams it from disk (never the whole file in
 * memory), and Chromium's network service reads it directly, where a
 * `Blob` slice would be copied through the browser process (measured:
 * about 4.5 CPU-s per GiB). The server checkpoints such a long request as
 * it goes. A resumed upload sends the slice from where the server stands.
 *
 * The upload is created with `digest-follows: sha-256`, so once every byte
 * is held the server waits, the file still unnamed, for one more request
 * carrying the file's SHA-256 as `Repr-Digest` (the hashing worker knows
 * it only once it has read the whole file, and hashes while the upload
 * runs); bytes that do not hash to what the browser read never take the
 * name. A small file goes in the request that creates its upload, digest
 * included. A dropped connection or a restarted server is retried with
 * growing pauses, each retry asking the server where it stands (`HEAD`)
 * and going on from there.
 *
 * @module
 */

import { type DetailedError, Upload } from "tus-js-client";
import { authHeaders, digestOfField, reprDigest, tusHeaders } from "./api.ts";

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
  /** Every byte is sent; the last request waits for the file's digest. */
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
  if (!response) return unreachable();
  return problemOf(response.getStatus(), response.getBody());
}

/** No answer came. */
function unreachable(): UploadError {
  return new UploadError(
    navigator.onLine === false
      ? "this device is offline"
      : "the server cannot be reached",
    0,
  );
}

/** A failure answered with `status`, told in the problem `body`'s words when it has them. */
function problemOf(status: number, body: string): UploadError {
  try {
    const problem = JSON.parse(body);
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

/**
 * tus-js-client's file source, but a request that runs from the first byte
 * to the last gets the `File` itself, not a slice of it (see the module's
 * note).
 */
const wholeFileReader = {
  openFile(input: Blob) {
    return Promise.resolve({
      size: input.size,
      slice(start: number, end: number) {
        const whole = start === 0 && end >= input.size;
        return Promise.resolve({
          value: whole ? input : input.slice(start, end),
          done: end >= input.size,
        });
      },
      close() {},
    });
  },
};

/** The file's digest; a failure to read the file is this side's, never retried. */
function digestOf(spec: UploadSpec): Promise<string> {
  return spec.digest().catch((error: Error) => {
    throw new UploadError(error.message, 0, LOCAL);
  });
}

/**
 * The request that names the file: empty, at the upload's end, with the
 * file's digest. Tried again like the others; an upload the server no
 * longer knows (a lost answer to an earlier try, or one created without
 * `digest-follows`) resolves with no digest, and the caller asks the
 * store what it holds.
 */
async function sendDigest(
  url: string,
  size: number,
  spec: UploadSpec,
  signal: AbortSignal,
  events: UploadEvents,
): Promise<UploadResult> {
  const sha256 = await digestOf(spec);
  for (let attempt = 0;; attempt++) {
    let failure: UploadError;
    try {
      const response = await fetch(url, {
        method: "PATCH",
        headers: {
          ...tusHeaders(),
          "Content-Type": "application/offset+octet-stream",
          "Upload-Offset": String(size),
          "Repr-Digest": reprDigest(sha256),
        },
        body: new Uint8Array(0),
        signal,
      });
      const body = await response.text();
      if (response.ok) {
        return {
          serverSha256: digestOfField(response.headers.get("Repr-Digest")),
        };
      }
      if (response.status === 404) return { serverSha256: undefined };
      failure = problemOf(response.status, body);
    } catch {
      if (signal.aborted) throw new UploadError("paused", 0, LOCAL);
      failure = unreachable();
    }
    if (!retriable(failure) || attempt >= RETRY_DELAYS.length) throw failure;
    events.onRetry(failure.message);
    await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS[attempt]));
    if (signal.aborted) throw new UploadError("paused", 0, LOCAL);
  }
}

/** Starts uploading `spec.file`. */
export function startUpload(
  spec: UploadSpec,
  events: UploadEvents,
): RunningUpload {
  const size = spec.file.size;
  const small = size <= SMALL;
  let paused = false;
  const halt = new AbortController();
  let upload: Upload;
  let stop: (error: UploadError) => void;
  const done = new Promise<UploadResult>((resolve, reject) => {
    stop = reject;
    upload = new Upload(spec.file, {
      endpoint: new URL("/files/", location.href).href,
      ...(spec.uploadUrl ? { uploadUrl: spec.uploadUrl } : {}),
      metadata: small
        ? { filename: spec.name }
        : { filename: spec.name, "digest-follows": "sha-256" },
      fileReader: wholeFileReader,
      retryDelays: RETRY_DELAYS,
      uploadDataDuringCreation: small,
      storeFingerprintForResuming: false,
      headers: authHeaders(),
      onBeforeRequest: async (req) => {
        if (req.getMethod() !== "POST" || !small) return;
        events.onAwaitingDigest();
        req.setHeader("Repr-Digest", reprDigest(await digestOf(spec)));
        if (paused) throw new UploadError("paused", 0, LOCAL);
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
      onSuccess: ({ lastResponse }) => {
        const answered = digestOfField(
          lastResponse.getHeader("Repr-Digest") ?? null,
        );
        if (small || answered !== undefined) {
          return resolve({ serverSha256: answered });
        }
        events.onAwaitingDigest();
        sendDigest(upload.url!, size, spec, halt.signal, events)
          .then(resolve, reject);
      },
      onError: (error) => reject(failureText(error)),
    });
    upload.start();
  });
  done.catch(() => undefined);
  return {
    done,
    pause() {
      paused = true;
      halt.abort();
      void upload.abort(false);
      stop(new UploadError("paused", 0, LOCAL));
    },
  };
}
