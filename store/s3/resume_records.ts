/**
 * The resume state of every upload into an S3 store, kept in the bucket
 * itself so any server can continue it: one small JSON object per name,
 * `PREFIX.ftv/uploads/NAME.json`, holding the manifest, the multipart
 * upload, the parts uploaded, the chunks held, the owner and its lease.
 *
 * Ownership is decided by the store's conditional writes: a record is
 * created with `If-None-Match: *` and every later write carries `If-Match`
 * with the entity tag the writer last saw, so of two servers racing for one
 * upload exactly one write succeeds and the other is told `busy`. A write
 * whose answer was lost and that was sent again finds a 412; it is then
 * read back, and counts as done when the record carries its own `writeId`.
 * The owner renews its lease while it works and ends it when it lets go; a
 * server that died leaves a lease that runs out, after which another server
 * takes the upload over.
 *
 * @module
 */

import type { Manifest } from "../../engine/resume_state.ts";
import type { Bucket, Part } from "./bucket.ts";

/** The record of one upload into the store. */
export interface ResumeRecord {
  version: 1;
  manifest: Manifest;
  /** The multipart upload's id. */
  uploadId: string;
  /** The key it uploads to: the staging object, copied to the name once verified. */
  staging: string;
  /** Chunks per part (see `part_rule.ts`). */
  partChunks: number;
  /** Parts uploaded (as of the last write; ListParts is the truth). */
  parts: Part[];
  /** Base64 bitmap of the chunks the store holds: those of the parts, and of the tail. */
  have: string;
  /**
   * The bytes held from the start of the first part not uploaded (whole
   * chunks, then part of one), in an object of their own: what an HTTP
   * request that ended mid-part left.
   */
  tail?: { key: string; etag: string; part: number; bytes: number };
  /** The server that owns it (an id per server process). */
  owner: string;
  /** Until when the owner holds it, ms since the epoch; 0 when let go. */
  leaseUntil: number;
  /** A fresh value per write, to recognise one's own write after a retry. */
  writeId: string;
  /** When it was last written, ms since the epoch. */
  updatedMs: number;
}

/** A record as read, with the entity tag a write must name. */
export interface HeldRecord {
  record: ResumeRecord;
  etag: string;
}

/** The records under one prefix. */
export class ResumeRecords {
  readonly bucket: Bucket;
  readonly folder: string;

  /** Records of `bucket` under `prefix` (`""` or ending in `/`). */
  constructor(bucket: Bucket, prefix: string) {
    this.bucket = bucket;
    this.folder = `${prefix}.ftv/uploads/`;
  }

  /** The key of `name`'s record. */
  keyOf(name: string): string {
    return `${this.folder}${name}.json`;
  }

  /** The record of `name`, or `undefined` (none, or one that does not parse: taken as none). */
  async read(name: string): Promise<HeldRecord | undefined> {
    const found = await this.bucket.getText(this.keyOf(name));
    if (!found) return undefined;
    const record = parse(found.text);
    return record ? { record, etag: found.etag } : undefined;
  }

  /**
   * Writes `record` for `name`: created when `etag` is undefined (it must
   * not exist), else replacing the version with that entity tag. The new
   * entity tag, or `"conflict"` when another writer came first.
   */
  async write(
    name: string,
    record: ResumeRecord,
    etag: string | undefined,
  ): Promise<string | "conflict"> {
    const body = new TextEncoder().encode(JSON.stringify(record));
    const written = await this.bucket.put(
      this.keyOf(name),
      body,
      etag === undefined
        ? { ifNoneMatch: true, contentType: "application/json" }
        : { ifMatch: etag, contentType: "application/json" },
    );
    if (written !== "conflict") return written.etag;
    const now = await this.read(name);
    return now?.record.writeId === record.writeId ? now.etag : "conflict";
  }

  /** Removes the record of `name`. */
  async remove(name: string): Promise<void> {
    await this.bucket.delete(this.keyOf(name));
  }

  /** Every record, with its name. */
  async *all(): AsyncGenerator<{ name: string } & HeldRecord> {
    for await (const item of this.bucket.list(this.folder)) {
      if (!item.key.endsWith(".json")) continue;
      const name = item.key.slice(this.folder.length, -".json".length);
      const held = await this.read(name);
      if (held) yield { name, ...held };
    }
  }
}

function parse(text: string): ResumeRecord | undefined {
  try {
    const record = JSON.parse(text) as ResumeRecord;
    const valid = record?.version === 1 &&
      typeof record.uploadId === "string" &&
      typeof record.staging === "string" && Array.isArray(record.parts) &&
      Number.isSafeInteger(record.partChunks) && record.partChunks > 0 &&
      typeof record.have === "string" && typeof record.owner === "string" &&
      typeof record.leaseUntil === "number" &&
      typeof record.manifest === "object" && record.manifest !== null;
    return valid ? record : undefined;
  } catch {
    return undefined;
  }
}
