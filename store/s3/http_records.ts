/**
 * The records of resumable HTTP uploads in an S3 store: one small JSON
 * object per upload, `PREFIX.ftv/http/<id>.json`, so a tus or IETF-draft
 * client may continue its upload through any server.
 *
 * @module
 */

import type { UploadRecordStore } from "../interface.ts";
import {
  isUploadId,
  parseRecord,
  type UploadRecord,
} from "../upload_record.ts";
import type { Bucket } from "./bucket.ts";

/** The HTTP upload records under one prefix. */
export class HttpRecords implements UploadRecordStore {
  readonly #bucket: Bucket;
  readonly #folder: string;

  /** Records of `bucket` under `prefix` (`""` or ending in `/`). */
  constructor(bucket: Bucket, prefix: string) {
    this.#bucket = bucket;
    this.#folder = `${prefix}.ftv/http/`;
  }

  async save(record: UploadRecord): Promise<void> {
    await this.#bucket.put(
      this.#key(record.id),
      new TextEncoder().encode(JSON.stringify(record)),
      { contentType: "application/json" },
    );
  }

  async read(id: string): Promise<UploadRecord | undefined> {
    if (!isUploadId(id)) return undefined;
    const found = await this.#bucket.getText(this.#key(id));
    return found ? parseRecord(found.text, id) : undefined;
  }

  async remove(id: string): Promise<void> {
    if (isUploadId(id)) await this.#bucket.delete(this.#key(id));
  }

  async all(): Promise<{ record: UploadRecord; savedMs: number }[]> {
    const found: { record: UploadRecord; savedMs: number }[] = [];
    for await (const item of this.#bucket.list(this.#folder)) {
      const id = item.key.slice(this.#folder.length, -".json".length);
      const record = item.key.endsWith(".json")
        ? await this.read(id)
        : undefined;
      if (record) found.push({ record, savedMs: item.lastModifiedMs });
    }
    return found;
  }

  #key(id: string): string {
    return `${this.#folder}${id}.json`;
  }
}
