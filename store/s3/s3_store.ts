/**
 * The S3 store (`ftv server --store s3://BUCKET/PREFIX`): stored files are
 * objects under the prefix with their SHA-256 in their metadata; uploads
 * are multipart uploads whose resume state is a record in the bucket
 * (`store/s3/upload.ts`, `claim.ts`), so several stateless servers share
 * one bucket and any of them continues any transfer. Nothing is kept on
 * the server's disk.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  ERROR_CODE,
  type Outcome,
  type Refusal,
  refusal,
} from "../../base/errors.ts";
import type { Logger } from "../../base/log.ts";
import type { EagerBody } from "../../engine/receiver.ts";
import type { Manifest } from "../../engine/resume_state.ts";
import type { ChunkGuard } from "../../engine/sender.ts";
import type { DirEntry, FileEntry } from "../../protocol.ts";
import {
  type Attributes,
  damagedRefusal,
  type ReceiveOptions,
  type Recheck,
  type SmallPut,
  type SmallRead,
  type SmallStored,
  type Store,
  type StoreCheckReport,
  type StoredFile,
  type SweepReport,
  type Upload,
} from "../interface.ts";
import { Bucket, expect, headOf, type ObjectHead } from "./bucket.ts";
import { S3Catalog } from "./catalog.ts";
import { type ClaimContext, claimUpload } from "./claim.ts";
import { S3Client, type S3Config } from "./client.ts";
import { HttpRecords } from "./http_records.ts";
import { objectMeta, storedSha256 } from "./object_meta.ts";
import { hashObject, ObjectSource } from "./object_source.ts";
import { objectSizeRefusal } from "./part_rule.ts";
import { ResumeRecords } from "./resume_records.ts";
import { sweepS3 } from "./sweep.ts";
import { checkS3 } from "./check.ts";

/** How long an upload's owner holds it without renewing, unless told otherwise. */
export const DEFAULT_LEASE_MS = 10_000;

/** Options for {@linkcode openS3Store}. */
export interface S3StoreOptions extends Omit<S3Config, "bucket"> {
  /** `s3://BUCKET` or `s3://BUCKET/PREFIX`. */
  url: string;
  /** How long an upload's owner holds it without renewing. @default 10000 */
  leaseMs?: number;
  /** Where the store logs. */
  log: Logger;
  /** Objects larger than this are copied part by part. @default 5 GiB */
  copyPartBytes?: number;
}

/** Splits `s3://BUCKET/PREFIX` into the bucket and the prefix (`""` or ending in `/`). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(
    url,
  );
  if (!match) {
    throw new RangeError(
      `Cannot use store ${
        JSON.stringify(url)
      }: expected s3://BUCKET or s3://BUCKET/PREFIX (a bucket name of 3 to 63 lowercase letters, digits, dots and hyphens)`,
    );
  }
  const prefix = (match[2] ?? "").replace(/^\/+|\/+$/g, "");
  return { bucket: match[1]!, prefix: prefix ? `${prefix}/` : "" };
}

/** Opens the S3 store `options.url`, creating its bucket when missing. */
export async function openS3Store(options: S3StoreOptions): Promise<S3Store> {
  const { bucket, prefix } = parseS3Url(options.url);
  const client = new S3Client({ ...options, bucket });
  const store = new S3Store(
    new Bucket(client, options.copyPartBytes),
    prefix,
    options.leaseMs ?? DEFAULT_LEASE_MS,
    options.log,
  );
  try {
    if (await store.bucket.ensure()) {
      options.log.info(`Created bucket ${bucket}`);
    }
  } catch (error) {
    client.close();
    throw error;
  }
  return store;
}

/** See the module docs. */
export class S3Store implements Store {
  readonly bucket: Bucket;
  readonly records: HttpRecords;
  readonly shared = true;
  readonly #prefix: string;
  readonly #catalog: S3Catalog;
  readonly #claims: ClaimContext;
  readonly #resume: ResumeRecords;

  /** The store of `bucket` under `prefix`. */
  constructor(bucket: Bucket, prefix: string, leaseMs: number, log: Logger) {
    this.bucket = bucket;
    this.#prefix = prefix;
    this.#catalog = new S3Catalog(bucket, prefix);
    this.#resume = new ResumeRecords(bucket, prefix);
    this.records = new HttpRecords(bucket, prefix);
    this.#claims = {
      bucket,
      records: this.#resume,
      owner: crypto.randomUUID(),
      leaseMs,
      stagingFolder: `${prefix}.ftv/staging/`,
      warm: new Map(),
      held: new Set(),
      log,
    };
  }

  get description(): string {
    return `s3://${this.bucket.client.config.bucket}/${this.#prefix} at ${
      this.bucket.client.config.endpoints.join(", ")
    }`;
  }

  nameRefusal(): Promise<Refusal | undefined> {
    return Promise.resolve(undefined); // Keys have no links to follow.
  }

  prepare(): Refusal | undefined {
    return undefined; // Folders need not exist before the files in them.
  }

  totalBytes(): Promise<number> {
    return Promise.reject(
      new RangeError("Cannot count the bytes of an S3 store: use its quota"),
    );
  }

  async lookup(name: string): Promise<FileEntry | undefined> {
    return (await this.#catalog.lookup(name))?.entry;
  }

  async open(name: string): Promise<StoredFile | undefined> {
    const found = await this.#catalog.lookup(name);
    if (!found) return undefined;
    const source = new ObjectSource(
      this.bucket,
      this.#catalog.keyOf(name),
      found.head.etag,
      found.head.size,
    );
    const close = () => source.close();
    return { entry: found.entry, source, close, [Symbol.dispose]: close };
  }

  /** One ranged GET: the bytes and metadata together; checked against the digest on every read. */
  async readSmall(name: string, maxBytes: number): Promise<SmallRead> {
    const key = this.#catalog.keyOf(name);
    const response = await this.bucket.client.open({
      method: "GET",
      key,
      headers: { range: `bytes=0-${Math.max(0, maxBytes - 1)}` },
    });
    if (response.status === 416) { // An empty object has no byte 0.
      await response.body?.cancel();
      const head = await this.bucket.head(key);
      if (!head) return { kind: "missing" };
      return await this.#checkedSmall(name, head, new Uint8Array(0));
    }
    if (response.status !== 200 && response.status !== 206) {
      const text = await response.text();
      if (response.status === 404) return { kind: "missing" };
      expect({ status: response.status, headers: response.headers, text }, [
        200,
      ], `read ${JSON.stringify(key)}`);
    }
    const head = headOf(response.headers);
    if (head.size > maxBytes) {
      await response.body?.cancel();
      return { kind: "tooLarge" };
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    return await this.#checkedSmall(name, head, bytes);
  }

  async #checkedSmall(
    name: string,
    head: ObjectHead,
    bytes: Uint8Array,
  ): Promise<SmallRead> {
    if (bytes.length !== head.size) return { kind: "tooLarge" };
    const actual = createHash("sha256").update(bytes).digest("hex");
    const stored = storedSha256(head);
    if (stored !== undefined && stored !== actual) {
      return { kind: "refused", refusal: damagedRefusal(stored) };
    }
    return {
      kind: "ok",
      entry: await this.#catalog.entryOf(name, head),
      bytes,
    };
  }

  /** One PUT of the verified bytes, with the digest in the metadata: atomic, so never a mix. */
  async storeSmall(
    put: SmallPut,
    body: EagerBody,
  ): Promise<SmallStored> {
    const held = await this.lookup(put.name);
    if (held?.size === put.size && held.sha256 === put.sha256) {
      return { kind: "held" };
    }
    if (!body.ok) return { kind: "retry", reason: body.reason };
    await this.bucket.put(
      this.#catalog.keyOf(put.name),
      body.bytes,
      { meta: objectMeta(put.sha256, put) },
    );
    this.#catalog.forget(put.name);
    return { kind: "stored" };
  }

  /** An empty marker object `NAME/` with the folder's mode and mtime. */
  async makeFolder(
    name: string,
    attributes: Attributes,
  ): Promise<Refusal | undefined> {
    const file = await this.bucket.head(this.#catalog.keyOf(name));
    if (file) {
      return refusal(
        ERROR_CODE.badName,
        `${JSON.stringify(name)} is a stored file, not a folder`,
      );
    }
    await this.bucket.put(
      `${this.#catalog.keyOf(name)}/`,
      new Uint8Array(0),
      { meta: objectMeta("", attributes) },
    );
    return undefined;
  }

  listTree(prefix?: string): Promise<{ files: FileEntry[]; dirs: DirEntry[] }> {
    return this.#catalog.listTree(prefix);
  }

  /** Reads the object whole and compares it with the digest in its metadata. */
  async recheck(name: string): Promise<Recheck> {
    const key = this.#catalog.keyOf(name);
    const head = await this.bucket.head(key);
    if (!head) return { kind: "missing" };
    const actual = await hashObject(this.bucket, key, head.size);
    const stored = storedSha256(head);
    if (stored === undefined || stored === actual) {
      return {
        kind: stored === undefined ? "new" : "intact",
        sha256: actual,
        size: head.size,
      };
    }
    return { kind: "damaged", expected: stored, actual, size: head.size };
  }

  async receive(
    manifest: Manifest,
    options: ReceiveOptions,
  ): Promise<Outcome<Upload>> {
    const tooLarge = objectSizeRefusal(manifest.size, manifest.chunkSize);
    if (tooLarge) return { ok: false, refusal: tooLarge };
    this.#catalog.forget(manifest.name);
    return await claimUpload(
      this.#claims,
      manifest,
      this.#catalog.keyOf(manifest.name),
      options.attributes ?? {},
    );
  }

  async lastWritten(name: string): Promise<number | undefined> {
    return (await this.#resume.read(name))?.record.updatedMs;
  }

  guardFor(): Promise<ChunkGuard | undefined> {
    return Promise.resolve(undefined); // The store keeps its own checksums.
  }

  sweep(ttlMs: number, log: Logger): Promise<SweepReport> {
    return sweepS3(
      {
        bucket: this.bucket,
        records: this.#resume,
        http: this.records,
        stagingFolder: this.#claims.stagingFolder,
      },
      ttlMs,
      log,
    );
  }

  check(log: Logger, signal?: AbortSignal): Promise<StoreCheckReport> {
    return checkS3(this, log, signal);
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.bucket.client.close();
    return Promise.resolve();
  }
}
