/**
 * The S3 operations ftv uses, typed, over one {@linkcode S3Client}: objects
 * (head, get, conditional put, copy, delete), multipart uploads (create,
 * upload a part, list parts, complete, abort, list the unfinished ones),
 * paged listings, and the bucket itself. Entity tags are handled without
 * their quotes, which is the only form RGW 16 matches in `If-Match`.
 *
 * @module
 */

import { StoreError } from "../../base/errors.ts";
import { answerError, type S3Answer, type S3Client } from "./client.ts";
import { bareEtag, elements, encodeXml, tagText } from "./xml.ts";

/** What a HEAD (or GET) says of an object. */
export interface ObjectHead {
  size: number;
  /** Its entity tag, without quotes. */
  etag: string;
  lastModifiedMs: number;
  /** User metadata (`x-amz-meta-*`), by name without the prefix. */
  meta: Record<string, string>;
}

/** One object of a listing. */
export interface Listed {
  key: string;
  size: number;
  etag: string;
  lastModifiedMs: number;
}

/** An unfinished multipart upload. */
export interface PendingUpload {
  key: string;
  uploadId: string;
  initiatedMs: number;
}

/** One uploaded part. */
export interface Part {
  number: number;
  etag: string;
  size: number;
}

/** Conditions and metadata of a PUT. */
export interface PutOptions {
  /** Only if no object has the key (`If-None-Match: *`). */
  ifNoneMatch?: boolean;
  /** Only if the object has this entity tag (`If-Match`). */
  ifMatch?: string;
  meta?: Record<string, string>;
  contentType?: string;
}

/** S3's largest single copy; larger objects are copied part by part. */
export const MAX_COPY_BYTES = 5 * 1024 ** 3;

/** Most keys a listing page holds. */
const PAGE_KEYS = 1000;

/** One bucket's objects and uploads; see the module docs. */
export class Bucket {
  readonly client: S3Client;
  #copyPartBytes: number;

  /** The bucket `client` is configured for; `copyPartBytes` sizes a large copy's parts. */
  constructor(client: S3Client, copyPartBytes = MAX_COPY_BYTES) {
    this.client = client;
    this.#copyPartBytes = copyPartBytes;
  }

  /** Creates the bucket when it does not exist yet; true when it did that. */
  async ensure(): Promise<boolean> {
    const head = await this.client.send({ method: "HEAD" });
    if (head.status === 200) return false;
    if (head.status !== 404) throw answerError("reach the bucket", head);
    const made = await this.client.send({ method: "PUT" });
    if (made.status === 200 || made.status === 409) return made.status === 200;
    throw answerError("create the bucket", made);
  }

  /** What the object `key` is, or `undefined` when there is none. */
  async head(key: string): Promise<ObjectHead | undefined> {
    const answer = await this.client.send({ method: "HEAD", key });
    if (answer.status === 404) return undefined;
    expect(answer, [200], `look at ${JSON.stringify(key)}`);
    return headOf(answer.headers);
  }

  /** The whole object `key` as text with its entity tag, or `undefined`. */
  async getText(
    key: string,
  ): Promise<{ text: string; etag: string } | undefined> {
    const answer = await this.client.send({ method: "GET", key });
    if (answer.status === 404) return undefined;
    expect(answer, [200], `read ${JSON.stringify(key)}`);
    return { text: answer.text, etag: bareEtag(answer.headers.get("etag")) };
  }

  /**
   * Stores `body` under `key`; resolves to its new entity tag, or
   * `"conflict"` when a condition did not hold (412).
   */
  async put(
    key: string,
    body: Uint8Array | readonly Uint8Array[],
    options: PutOptions = {},
  ): Promise<{ etag: string } | "conflict"> {
    const headers: Record<string, string> = metaHeaders(options.meta);
    if (options.ifNoneMatch) headers["if-none-match"] = "*";
    if (options.ifMatch !== undefined) headers["if-match"] = options.ifMatch;
    if (options.contentType) headers["content-type"] = options.contentType;
    const answer = await this.client.send({
      method: "PUT",
      key,
      headers,
      body,
    });
    if (answer.status === 412) return "conflict";
    expect(answer, [200], `store ${JSON.stringify(key)}`);
    return { etag: bareEtag(answer.headers.get("etag")) };
  }

  /** Removes `key` (absent is fine). */
  async delete(key: string): Promise<void> {
    const answer = await this.client.send({ method: "DELETE", key });
    expect(answer, [200, 204, 404], `remove ${JSON.stringify(key)}`);
  }

  /**
   * Copies `from` (of `size` bytes, with entity tag `etag`) to `to` with
   * new metadata, inside the store: at once up to 5 GiB, part by part
   * (UploadPartCopy) beyond.
   */
  async copy(
    from: { key: string; etag: string; size: number },
    to: string,
    meta: Record<string, string>,
  ): Promise<void> {
    if (from.size > this.#copyPartBytes) {
      return await this.#copyInParts(from, to, meta);
    }
    const answer = await this.client.send({
      method: "PUT",
      key: to,
      headers: {
        ...metaHeaders(meta),
        "x-amz-copy-source": copySource(this.client.config.bucket, from.key),
        "x-amz-copy-source-if-match": from.etag,
        "x-amz-metadata-directive": "REPLACE",
      },
    });
    expect(answer, [200], `copy ${JSON.stringify(from.key)}`);
    // S3 may answer 200 with an error in the body.
    if (answer.text.includes("<Error>")) {
      throw answerError(`copy ${JSON.stringify(from.key)}`, answer);
    }
  }

  async #copyInParts(
    from: { key: string; etag: string; size: number },
    to: string,
    meta: Record<string, string>,
  ): Promise<void> {
    const uploadId = await this.createMultipart(to, meta);
    try {
      const parts: Part[] = [];
      for (let start = 0, n = 1; start < from.size; n++) {
        const end = Math.min(from.size, start + this.#copyPartBytes);
        const answer = await this.client.send({
          method: "PUT",
          key: to,
          query: { partNumber: String(n), uploadId },
          headers: {
            "x-amz-copy-source": copySource(
              this.client.config.bucket,
              from.key,
            ),
            "x-amz-copy-source-if-match": from.etag,
            "x-amz-copy-source-range": `bytes=${start}-${end - 1}`,
          },
        });
        expect(answer, [200], `copy part ${n} of ${JSON.stringify(from.key)}`);
        const etag = bareEtag(tagText(answer.text, "ETag"));
        parts.push({ number: n, etag, size: end - start });
        start = end;
      }
      await this.complete(to, uploadId, parts);
    } catch (error) {
      await this.abort(to, uploadId).catch(() => undefined);
      throw error;
    }
  }

  /** Starts a multipart upload to `key`; its upload id. */
  async createMultipart(
    key: string,
    meta?: Record<string, string>,
  ): Promise<string> {
    const answer = await this.client.send({
      method: "POST",
      key,
      query: { uploads: "" },
      headers: metaHeaders(meta),
    });
    expect(answer, [200], `start an upload to ${JSON.stringify(key)}`);
    const id = tagText(answer.text, "UploadId");
    if (!id) {
      throw answerError(`start an upload to ${JSON.stringify(key)}`, answer);
    }
    return id;
  }

  /** Uploads part `number` (its body in `pieces`); its entity tag. */
  async uploadPart(
    key: string,
    uploadId: string,
    number: number,
    pieces: readonly Uint8Array[],
  ): Promise<string> {
    const answer = await this.client.send({
      method: "PUT",
      key,
      query: { partNumber: String(number), uploadId },
      body: pieces,
    });
    expect(answer, [200], `upload part ${number} of ${JSON.stringify(key)}`);
    return bareEtag(answer.headers.get("etag"));
  }

  /** Every part uploaded so far, by number; `undefined` when the upload is gone. */
  async listParts(key: string, uploadId: string): Promise<Part[] | undefined> {
    const parts: Part[] = [];
    let marker = "";
    for (let page = 0; page < 20; page++) {
      const answer = await this.client.send({
        method: "GET",
        key,
        query: {
          uploadId,
          "max-parts": String(PAGE_KEYS),
          ...(marker ? { "part-number-marker": marker } : {}),
        },
      });
      if (answer.status === 404) return undefined;
      expect(answer, [200], `list the parts of ${JSON.stringify(key)}`);
      for (const part of elements(answer.text, "Part")) {
        parts.push({
          number: Number(tagText(part, "PartNumber")),
          etag: bareEtag(tagText(part, "ETag")),
          size: Number(tagText(part, "Size")),
        });
      }
      if (tagText(answer.text, "IsTruncated") !== "true") break;
      marker = tagText(answer.text, "NextPartNumberMarker") ?? "";
      if (!marker) break;
    }
    return parts.sort((a, b) => a.number - b.number);
  }

  /** Completes an upload from `parts` (in order); the object appears under `key`. */
  async complete(
    key: string,
    uploadId: string,
    parts: readonly Part[],
  ): Promise<void> {
    const body = `<CompleteMultipartUpload>${
      parts.map((part) =>
        `<Part><PartNumber>${part.number}</PartNumber><ETag>"${
          encodeXml(part.etag)
        }"</ETag></Part>`
      ).join("")
    }</CompleteMultipartUpload>`;
    const answer = await this.client.send({
      method: "POST",
      key,
      query: { uploadId },
      headers: { "content-type": "application/xml" },
      body: new TextEncoder().encode(body),
    });
    expect(answer, [200], `complete the upload to ${JSON.stringify(key)}`);
    if (answer.text.includes("<Error>")) {
      throw answerError(
        `complete the upload to ${JSON.stringify(key)}`,
        answer,
      );
    }
  }

  /** Abandons an upload and its parts (gone already is fine). */
  async abort(key: string, uploadId: string): Promise<void> {
    const answer = await this.client.send({
      method: "DELETE",
      key,
      query: { uploadId },
    });
    expect(
      answer,
      [200, 204, 404],
      `abort the upload to ${JSON.stringify(key)}`,
    );
  }

  /** Every object whose key starts with `prefix`, in key order, page by page. */
  async *list(prefix: string): AsyncGenerator<Listed> {
    let token = "";
    for (;;) {
      const answer = await this.client.send({
        method: "GET",
        query: {
          "list-type": "2",
          prefix,
          "max-keys": String(PAGE_KEYS),
          ...(token ? { "continuation-token": token } : {}),
        },
      });
      expect(answer, [200], `list ${JSON.stringify(prefix)}`);
      for (const item of elements(answer.text, "Contents")) {
        yield {
          key: tagText(item, "Key") ?? "",
          size: Number(tagText(item, "Size")),
          etag: bareEtag(tagText(item, "ETag")),
          lastModifiedMs: Date.parse(tagText(item, "LastModified") ?? "") || 0,
        };
      }
      if (tagText(answer.text, "IsTruncated") !== "true") return;
      token = tagText(answer.text, "NextContinuationToken") ?? "";
      if (!token) return;
    }
  }

  /** The unfinished multipart uploads under `prefix`. */
  async pendingUploads(prefix: string): Promise<PendingUpload[]> {
    const found: PendingUpload[] = [];
    let keyMarker = "";
    let idMarker = "";
    for (let page = 0; page < 1000; page++) {
      const answer = await this.client.send({
        method: "GET",
        query: {
          uploads: "",
          prefix,
          "max-uploads": String(PAGE_KEYS),
          ...(keyMarker ? { "key-marker": keyMarker } : {}),
          ...(idMarker ? { "upload-id-marker": idMarker } : {}),
        },
      });
      expect(answer, [200], `list the uploads under ${JSON.stringify(prefix)}`);
      for (const item of elements(answer.text, "Upload")) {
        found.push({
          key: tagText(item, "Key") ?? "",
          uploadId: tagText(item, "UploadId") ?? "",
          initiatedMs: Date.parse(tagText(item, "Initiated") ?? "") || 0,
        });
      }
      if (tagText(answer.text, "IsTruncated") !== "true") break;
      keyMarker = tagText(answer.text, "NextKeyMarker") ?? "";
      idMarker = tagText(answer.text, "NextUploadIdMarker") ?? "";
      if (!keyMarker) break;
    }
    return found;
  }
}

/** Throws the {@linkcode StoreError} of an answer whose status is not one of `statuses`. */
export function expect(
  answer: S3Answer,
  statuses: readonly number[],
  action: string,
): void {
  if (!statuses.includes(answer.status)) throw answerError(action, answer);
}

/** What the header fields of a HEAD or GET answer say of the object. */
export function headOf(headers: Headers): ObjectHead {
  const meta: Record<string, string> = {};
  headers.forEach((value, name) => {
    if (name.startsWith("x-amz-meta-")) {
      meta[name.slice("x-amz-meta-".length)] = value;
    }
  });
  const range = headers.get("content-range");
  const total = range ? Number(range.slice(range.lastIndexOf("/") + 1)) : NaN;
  return {
    size: Number.isFinite(total)
      ? total
      : Number(headers.get("content-length") ?? 0),
    etag: bareEtag(headers.get("etag")),
    lastModifiedMs: Date.parse(headers.get("last-modified") ?? "") || 0,
    meta,
  };
}

function metaHeaders(meta: Record<string, string> | undefined) {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(meta ?? {})) {
    headers[`x-amz-meta-${name}`] = value;
  }
  return headers;
}

/** The `x-amz-copy-source` of `key` in `bucket`. */
function copySource(bucket: string, key: string): string {
  return `/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
}

/** Whether `error` says a multipart upload is gone (aborted, or completed). */
export function isNoSuchUpload(error: unknown): boolean {
  return error instanceof StoreError &&
    (error.code === "NoSuchUpload" || error.status === 404);
}
