/**
 * `GET` and `HEAD /files/<name>` (RFC 9110, RFC 9530): the stored file,
 * streamed with bounded memory, with its validators (a strong `ETag` and
 * `Repr-Digest` from its SHA-256, `Last-Modified`), one byte range, and
 * the conditionals `If-None-Match`, `If-Modified-Since`, `If-Match` and
 * `If-Range`. The server never serves bytes that no longer match the stored
 * digest as if they were good: it hashes the whole file while streaming
 * (for a range too: the bytes around it are read and hashed, not sent),
 * holds back the last piece until the digest is known, and on a mismatch
 * errors the response (no clean end: the client sees a failed transfer)
 * and has the file re-hashed, which marks it damaged.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { ERROR_CODE, refusal, TransferError } from "../../base/errors.ts";
import { noteYoungGarbage } from "../../base/gc.ts";
import type { FileEntry } from "../../protocol.ts";
import type { ChunkSource } from "../../engine/chunk_source.ts";
import type { ChunkGuard } from "../../engine/sender.ts";
import { damagedRefusal, type StoredFile } from "../../store.ts";
import { recheckAfterMismatch } from "../downloads.ts";
import { type Exchange, refused } from "./exchange.ts";
import { contentDisposition, contentType } from "./names.ts";
import { HTTP_FAILURE, httpFailure } from "./status.ts";

/**
 * Bytes read (and sent) at a time. Each piece sent is a fresh buffer (the
 * response holds it until written); fresh 1 MiB buffers cost the kernel
 * far more to map and zero than 256 KiB ones (measured: about 3.2 against
 * 1.7-2.5 server CPU-s per GiB).
 */
const PIECE_BYTES = 256 * 1024;

/** A byte range to send: `start` inclusive, `end` exclusive. */
interface Span {
  start: number;
  end: number;
}

/** The `Repr-Digest` field of a SHA-256 given in hex. */
export function reprDigest(sha256: string): string {
  return `sha-256=:${Buffer.from(sha256, "hex").toString("base64")}:`;
}

/** The strong entity tag of a file with this digest. */
export function etagOf(sha256: string): string {
  return `"${sha256}"`;
}

/** Answers `GET` or `HEAD` of the stored file `name` (already a legal name). */
export async function serveDownload(
  ex: Exchange,
  name: string,
): Promise<Response> {
  const { store } = ex.ctx;
  const what = `get ${JSON.stringify(name)}`;
  const linked = await store.nameRefusal(name);
  if (linked) return refused(ex, linked, what);
  const opened = await store.open(name);
  if (!opened) {
    return refused(
      ex,
      refusal(ERROR_CODE.notFound, "no such file on the server"),
      what,
    );
  }
  const { entry } = opened;
  let handedOver = false;
  try {
    if (entry.damaged) {
      return refused(ex, damagedRefusal(entry.sha256), what);
    }
    const headers = validators(entry);
    const early = conditionalAnswer(ex.request.headers, entry, headers);
    if (early) return early;
    const span = rangeOf(ex.request.headers, entry);
    if (span === "unsatisfiable") {
      return refused(
        ex,
        httpFailure(
          HTTP_FAILURE.range,
          `the range ${
            JSON.stringify(ex.request.headers.get("range"))
          } lies past the end of the ${entry.size}-byte file`,
        ),
        what,
        { headers: { "Content-Range": `bytes */${entry.size}`, ...headers } },
      );
    }
    headers["Content-Type"] = contentType(name);
    headers["Content-Disposition"] = contentDisposition(name);
    headers["Content-Length"] = String(
      (span?.end ?? entry.size) - (span?.start ?? 0),
    );
    if (span) {
      headers["Content-Range"] = `bytes ${span.start}-${
        span.end - 1
      }/${entry.size}`;
    }
    const status = span ? 206 : 200;
    if (ex.request.method === "HEAD") {
      return new Response(null, { status, headers });
    }
    const guard = await store.guardFor(name, entry, ex.ctx.log);
    handedOver = true;
    const body = verifiedStream(
      ex,
      opened,
      entry,
      span ?? { start: 0, end: entry.size },
      guard,
    );
    return new Response(body, { status, headers });
  } finally {
    if (!handedOver) opened.close();
  }
}

/** The headers every answer about `entry` carries. */
function validators(entry: FileEntry): Record<string, string> {
  return {
    "ETag": etagOf(entry.sha256),
    "Last-Modified": new Date(entry.mtimeMs).toUTCString(),
    "Repr-Digest": reprDigest(entry.sha256),
    "Accept-Ranges": "bytes",
    "X-Content-Type-Options": "nosniff",
  };
}

/** A 304 or 412 when a conditional header says so, else `undefined`. */
function conditionalAnswer(
  request: Headers,
  entry: FileEntry,
  headers: Record<string, string>,
): Response | undefined {
  const etag = etagOf(entry.sha256);
  const ifMatch = request.get("if-match");
  if (ifMatch !== null && !matchesTag(ifMatch, etag, true)) {
    return new Response(null, { status: 412, headers });
  }
  const ifNoneMatch = request.get("if-none-match");
  if (ifNoneMatch !== null) {
    return matchesTag(ifNoneMatch, etag, false)
      ? new Response(null, { status: 304, headers })
      : undefined;
  }
  const since = Date.parse(request.get("if-modified-since") ?? "");
  if (Number.isFinite(since) && wholeSeconds(entry.mtimeMs) <= since) {
    return new Response(null, { status: 304, headers });
  }
  return undefined;
}

/** Whether the list of entity tags `field` holds `etag` (or is `*`). */
function matchesTag(field: string, etag: string, strong: boolean): boolean {
  if (field.trim() === "*") return true;
  return field.split(",").some((tag) => {
    const trimmed = tag.trim();
    if (trimmed.startsWith("W/")) return !strong && trimmed.slice(2) === etag;
    return trimmed === etag;
  });
}

function wholeSeconds(ms: number): number {
  return Math.floor(ms / 1000) * 1000;
}

/**
 * The one range `Range` asks for: `undefined` for the whole file (no
 * `Range`, several ranges, a malformed one, or an `If-Range` that does not
 * match), or `"unsatisfiable"`.
 */
function rangeOf(
  request: Headers,
  entry: FileEntry,
): Span | "unsatisfiable" | undefined {
  const field = request.get("range");
  if (field === null) return undefined;
  const ifRange = request.get("if-range");
  if (ifRange !== null && !rangeStillValid(ifRange.trim(), entry)) {
    return undefined;
  }
  const match = /^bytes=(\d*)-(\d*)$/.exec(field.trim());
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  const size = entry.size;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size };
  }
  const start = Number(match[1]);
  const last = match[2] === "" ? size - 1 : Number(match[2]);
  if (match[2] !== "" && last < start) return undefined;
  if (start >= size) return "unsatisfiable";
  return { start, end: Math.min(size, last + 1) };
}

/** Whether `If-Range` (an entity tag or a date) still names this file. */
function rangeStillValid(ifRange: string, entry: FileEntry): boolean {
  if (ifRange.startsWith('"') || ifRange.startsWith("W/")) {
    return ifRange === etagOf(entry.sha256);
  }
  return Date.parse(ifRange) === wholeSeconds(entry.mtimeMs);
}

/**
 * Reads a file from its start, hashing every byte read. With a guard (the
 * file's parity), the file is read a whole guarded chunk at a time and each
 * chunk is checked, and repaired in place when it rotted, before any of it
 * is handed out.
 */
class HashingReader {
  readonly #file: StoredFile;
  readonly #source: ChunkSource;
  readonly #name: string;
  readonly #guard: ChunkGuard | undefined;
  readonly #hash = createHash("sha256");
  #scratch: Uint8Array | undefined;
  /** The guarded chunk last read: its buffer, where it starts, its length. */
  #chunk: { bytes: Uint8Array; start: number; length: number } | undefined;
  #closed = false;
  position = 0;

  constructor(file: StoredFile, name: string, guard: ChunkGuard | undefined) {
    this.#file = file;
    this.#source = file.source;
    this.#name = name;
    this.#guard = guard;
  }

  /** Fills `bytes` from the file and hashes them. */
  async readInto(bytes: Uint8Array): Promise<void> {
    const filled = this.#guard
      ? await this.#readGuarded(bytes)
      : await this.#source.readAt(this.position, bytes);
    if (filled < bytes.length) {
      throw new Error(
        `Cannot send ${JSON.stringify(this.#name)}: it ends before byte ${
          this.position + filled
        }`,
      );
    }
    this.#hash.update(bytes);
    this.position += bytes.length;
  }

  /** Fills `bytes` from checked chunks; the bytes filled. */
  async #readGuarded(bytes: Uint8Array): Promise<number> {
    let filled = 0;
    while (filled < bytes.length) {
      const at = this.position + filled;
      const chunk = await this.#checkedChunk(at);
      const from = at - chunk.start;
      const taken = Math.min(bytes.length - filled, chunk.length - from);
      if (taken <= 0) break;
      bytes.set(chunk.bytes.subarray(from, from + taken), filled);
      filled += taken;
    }
    return filled;
  }

  /** The guarded chunk holding byte `at`, read and checked. */
  async #checkedChunk(at: number) {
    const chunk = this.#chunk;
    if (chunk && at >= chunk.start && at < chunk.start + chunk.length) {
      return chunk;
    }
    const size = this.#guard!.chunkSize;
    const start = at - at % size;
    const bytes = chunk?.bytes ?? new Uint8Array(size);
    const length = await this.#source.readAt(start, bytes);
    await this.#guard!.check(start, bytes.subarray(0, length));
    this.#chunk = { bytes, start, length };
    return this.#chunk;
  }

  /** Reads and hashes, without keeping, the bytes up to `end`. */
  async hashUntil(end: number): Promise<void> {
    while (this.position < end) {
      this.#scratch ??= new Uint8Array(PIECE_BYTES);
      const room = Math.min(PIECE_BYTES, end - this.position);
      await this.readInto(this.#scratch.subarray(0, room));
    }
  }

  /** The digest of the whole file, once read to `size`; closes it. */
  async digest(size: number): Promise<string> {
    await this.hashUntil(size);
    if (await this.#source.readAt(size, new Uint8Array(1)) > 0) {
      throw new Error(
        `Cannot send ${JSON.stringify(this.#name)}: it grew while being sent`,
      );
    }
    this.close();
    return this.#hash.digest("hex");
  }

  close(): void {
    if (!this.#closed) this.#file.close();
    this.#closed = true;
  }
}

/**
 * The bytes of `span`, read through `file` in pieces: every byte of the
 * file is hashed, the last piece is held back until the digest is known,
 * and a digest that differs from the stored one errors the stream.
 */
function verifiedStream(
  ex: Exchange,
  file: StoredFile,
  entry: FileEntry,
  span: Span,
  guard: ChunkGuard | undefined,
): ReadableStream<Uint8Array> {
  const reader = new HashingReader(file, entry.name, guard);
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        await reader.hashUntil(span.start);
        // A fresh piece each time: the response may still hold the last one.
        const piece = new Uint8Array(
          Math.min(PIECE_BYTES, span.end - reader.position),
        );
        noteYoungGarbage(piece.length);
        await reader.readInto(piece);
        if (reader.position < span.end) return controller.enqueue(piece);
        const actual = await reader.digest(entry.size);
        if (actual !== entry.sha256) {
          controller.error(
            new Error(`${entry.name} no longer has its SHA-256`),
          );
          ex.ctx.log.error(
            `Stopped sending ${entry.name} to ${ex.peer}: its bytes have SHA-256 ${actual}, not ${entry.sha256} as stored`,
          );
          await recheckAfterMismatch(ex.ctx, entry.name);
          return;
        }
        if (piece.length > 0) controller.enqueue(piece);
        controller.close();
      } catch (error) {
        reader.close();
        controller.error(error);
        ex.ctx.log.warn(
          `Stopped sending to ${ex.peer}: ${(error as Error).message}`,
        );
        // A chunk its parity could not rebuild: the file is checked again.
        if (error instanceof TransferError) {
          await recheckAfterMismatch(ex.ctx, entry.name);
        }
      }
    },
    cancel() {
      reader.close();
    },
  }, { highWaterMark: 0 });
}
