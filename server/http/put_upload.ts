/**
 * `PUT /files/<name>` (as `curl -T` sends it): the body streamed into a
 * fresh part file through the chunk store, finalised only when complete;
 * a `Repr-Digest` or `Content-Digest` (sha-256) from the client is checked
 * before the file takes its name (a mismatch is refused with both digests
 * and nothing is stored). Answered with the `Repr-Digest` of what was
 * stored. Not resumable: a cut `PUT` leaves nothing (use tus or the IETF
 * draft at `/files/` to resume).
 *
 * @module
 */

import {
  ERROR_CODE,
  isNoSpace,
  type Outcome,
  refusal,
} from "../../base/errors.ts";
import { noSpaceRefusal, type Upload } from "../../store.ts";
import { uploadRefusal } from "../admission.ts";
import { writeBody } from "./body_sink.ts";
import { etagOf, reprDigest } from "./download.ts";
import { type Exchange, refused } from "./exchange.ts";
import { clientSha256 } from "./fields.ts";
import { warnParity } from "./upload_resource.ts";
import { HTTP_FAILURE, httpFailure } from "./status.ts";

/** Answers `PUT` of `name` (already a legal name). */
export async function receivePut(
  ex: Exchange,
  name: string,
): Promise<Response> {
  const { ctx, request } = ex;
  const what = `store ${JSON.stringify(name)}`;
  const length = request.headers.get("content-length");
  if (length === null || !/^\d+$/.test(length)) {
    return refused(
      ex,
      httpFailure(
        HTTP_FAILURE.lengthRequired,
        "a PUT needs a Content-Length (to send a stream of unknown length, create a resumable upload)",
      ),
      what,
    );
  }
  const size = Number(length);
  const digest = clientSha256(request.headers);
  if (!digest.ok) return refused(ex, digest.refusal, what);
  const denied = await uploadRefusal(ctx, {
    name,
    size,
    chunkSize: ctx.chunkSize,
  }, { links: true }) ?? ctx.store.prepare(name);
  if (denied) return refused(ex, denied, what);
  const claimed = await freshStore(ex, name, size, digest.value);
  if (!claimed.ok) return refused(ex, claimed.refusal, what);
  const store = claimed.value;
  ctx.busyNames.add(name);
  try {
    return await receiveInto(ex, store, digest.value, what);
  } catch (error) {
    if (!isNoSpace(error)) throw error;
    ctx.log.error(`Cannot store ${name}: no space left on the disk`);
    return refused(ex, noSpaceRefusal(name), what);
  } finally {
    ctx.busyNames.delete(name);
    if (!store.finished) {
      await store.discard().catch(() => undefined);
    }
  }
}

/** A claimed store for `name` holding nothing: whatever a part file held is dropped. */
async function freshStore(
  ex: Exchange,
  name: string,
  size: number,
  sha256: string | undefined,
): Promise<Outcome<Upload>> {
  const claim = () =>
    ex.ctx.store.receive({
      name,
      size,
      chunkSize: ex.ctx.chunkSize,
      mtimeMs: Date.now(),
      ...(sha256 === undefined ? {} : { sha256 }),
    }, { fsync: ex.ctx.fsync });
  const claimed = await claim();
  if (!claimed.ok) return claimed;
  if (claimed.value.heldBytes === 0 && !claimed.value.needsVerification) {
    return claimed;
  }
  await claimed.value.discard();
  return await claim();
}

/** Streams the body in, checks the digest, and stores the file. */
async function receiveInto(
  ex: Exchange,
  store: Upload,
  expected: string | undefined,
  what: string,
): Promise<Response> {
  const { ctx } = ex;
  const { name, size } = store.manifest;
  ctx.log.info(`Receiving ${name} (${size} bytes) over HTTP from ${ex.peer}`);
  const written = await writeBody(store, ex.request.body, {
    idleTimeoutMs: ex.http.idleTimeoutMs,
    signal: ex.http.stopping,
  });
  if (written.end !== "complete" || store.heldBytes < size) {
    const failure = written.end === "too_long"
      ? refusal(
        ERROR_CODE.tooLarge,
        `the body runs past its Content-Length of ${size}`,
      )
      : written.end === "idle"
      ? httpFailure(
        HTTP_FAILURE.timeout,
        `the body went silent at byte ${written.bytes}`,
      )
      : refusal(
        ERROR_CODE.badRequest,
        `the body ended at byte ${written.bytes} of ${size}`,
      );
    return refused(ex, failure, what);
  }
  const sha256 = await store.digest();
  if (expected !== undefined && expected !== sha256) {
    return refused(
      ex,
      refusal(
        ERROR_CODE.digestMismatch,
        `the bytes received have SHA-256 ${sha256}, not ${expected} as the request's digest says; nothing was stored`,
      ),
      what,
      {
        extra: { expected, actual: sha256 },
        headers: { "Repr-Digest": reprDigest(sha256) },
      },
    );
  }
  await store.finalize();
  warnParity(ex, store);
  await ctx.store.flush();
  ctx.log.info(`File received over HTTP and saved as ${name}`);
  ctx.log.info(`Calculated checksum: ${sha256}`);
  return new Response(null, {
    status: 201,
    headers: {
      "Repr-Digest": reprDigest(sha256),
      "ETag": etagOf(sha256),
      "Location": `/files/${name.split("/").map(encodeURIComponent).join("/")}`,
    },
  });
}
