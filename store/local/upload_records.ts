/**
 * The records of resumable HTTP uploads in a local store: one small JSON
 * file per upload under `<dir>/.ftv/uploads/<id>.json`, written atomically,
 * so any process on the folder, and a restarted server, can continue it.
 * The bytes themselves are in the name's part file (see
 * `engine/chunk_store.ts`), claimed per request.
 *
 * @module
 */

import { removeIfPresent } from "../../engine/atomic_file.ts";
import { META_DIR } from "../../protocol/names.ts";
import type { UploadRecordStore } from "../interface.ts";
import {
  isUploadId,
  parseRecord,
  type UploadRecord,
} from "../upload_record.ts";

/** The records of one data folder. */
export class UploadRecords implements UploadRecordStore {
  readonly folder: string;

  /** The records kept under `dir`. */
  constructor(dir: string) {
    this.folder = `${dir}/${META_DIR}/uploads`;
  }

  /** Saves `record` whole or not at all. */
  async save(record: UploadRecord): Promise<void> {
    await Deno.mkdir(this.folder, { recursive: true });
    const path = this.#path(record.id);
    const temporary = `${path}.${crypto.randomUUID()}.tmp`;
    try {
      await Deno.writeTextFile(temporary, JSON.stringify(record));
      await Deno.rename(temporary, path);
    } catch (error) {
      await removeIfPresent(temporary).catch(() => undefined);
      throw error;
    }
  }

  /** The record of `id`, or `undefined` when there is none (or it is unreadable). */
  async read(id: string): Promise<UploadRecord | undefined> {
    if (!isUploadId(id)) return undefined;
    try {
      return parseRecord(await Deno.readTextFile(this.#path(id)), id);
    } catch {
      return undefined;
    }
  }

  /** Removes the record of `id`. */
  async remove(id: string): Promise<void> {
    await removeIfPresent(this.#path(id));
  }

  /** Every readable record, with when its file was written. */
  async all(): Promise<{ record: UploadRecord; savedMs: number }[]> {
    const found: { record: UploadRecord; savedMs: number }[] = [];
    try {
      for await (const item of Deno.readDir(this.folder)) {
        const id = item.name.slice(0, -".json".length);
        if (!item.isFile || !item.name.endsWith(".json")) continue;
        const record = await this.read(id);
        if (!record) continue;
        const info = await Deno.lstat(this.#path(id)).catch(() => undefined);
        if (info) {
          found.push({ record, savedMs: info.mtime?.getTime() ?? 0 });
        }
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return found;
  }

  /** Bytes the record of `id` takes, for the sweep's report. */
  async sizeOf(id: string): Promise<number> {
    const info = await Deno.lstat(this.#path(id)).catch(() => undefined);
    return info?.size ?? 0;
  }

  #path(id: string): string {
    return `${this.folder}/${id}.json`;
  }
}
