/**
 * The record of each resumable HTTP upload (tus or the IETF draft), one
 * small JSON file per upload under `<dir>/.ftv/uploads/<id>.json`, written
 * atomically, so any process on the store, and a restarted server, can
 * continue it. The bytes themselves are in the name's part file (see
 * `engine/chunk_store.ts`), claimed per request.
 *
 * @module
 */

import { removeIfPresent } from "../../engine/atomic_file.ts";
import type { Manifest } from "../../engine/resume_state.ts";
import { META_DIR } from "../../protocol/names.ts";

/** Which protocol created an upload; it is answered in the same one. */
export type UploadProtocol = "tus" | "ietf";

/** One resumable upload. */
export interface UploadRecord {
  /** 32 lowercase hex digits, the last part of its URL. */
  id: string;
  /** The stored name it will take. */
  name: string;
  /** Its length in bytes. */
  length: number;
  /** Chunk size of its part file (the server's when it was created). */
  chunkSize: number;
  /** When it was created, ms since the epoch; part of its part file's identity. */
  createdMs: number;
  /** Modification time the file gets, when the client said. */
  mtimeMs?: number;
  /** Permission bits the file gets, when the client said. */
  mode?: number;
  /** The SHA-256 (hex) the whole file must have, when the client said. */
  sha256?: string;
  /** The tus `Upload-Metadata` as sent, echoed by `HEAD`. */
  metadata?: string;
  /** The protocol that created it. */
  protocol: UploadProtocol;
}

const ID = /^[0-9a-f]{32}$/;

/** The manifest of an upload's part file. */
export function manifestOf(record: UploadRecord): Manifest {
  return {
    name: record.name,
    size: record.length,
    chunkSize: record.chunkSize,
    mtimeMs: record.createdMs,
    ...(record.sha256 === undefined ? {} : { sha256: record.sha256 }),
  };
}

/** The records of one data folder. */
export class UploadRecords {
  readonly folder: string;

  /** The records kept under `dir`. */
  constructor(dir: string) {
    this.folder = `${dir}/${META_DIR}/uploads`;
  }

  /** A fresh upload id. */
  static newId(): string {
    return crypto.randomUUID().replaceAll("-", "");
  }

  /** Whether `id` has the form of an upload id (checked before it reaches a path). */
  static isId(id: string): boolean {
    return ID.test(id);
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
    if (!UploadRecords.isId(id)) return undefined;
    try {
      const record = JSON.parse(await Deno.readTextFile(this.#path(id)));
      return isRecord(record) && record.id === id ? record : undefined;
    } catch {
      return undefined;
    }
  }

  /** Removes the record of `id`. */
  async remove(id: string): Promise<void> {
    await removeIfPresent(this.#path(id));
  }

  /** Every readable record, with its file's stat. */
  async all(): Promise<{ record: UploadRecord; info: Deno.FileInfo }[]> {
    const found: { record: UploadRecord; info: Deno.FileInfo }[] = [];
    try {
      for await (const item of Deno.readDir(this.folder)) {
        const id = item.name.slice(0, -".json".length);
        if (!item.isFile || !item.name.endsWith(".json")) continue;
        const record = await this.read(id);
        if (!record) continue;
        const info = await Deno.lstat(this.#path(id)).catch(() => undefined);
        if (info) found.push({ record, info });
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    return found;
  }

  #path(id: string): string {
    return `${this.folder}/${id}.json`;
  }
}

function isRecord(value: unknown): value is UploadRecord {
  const v = value as UploadRecord;
  return typeof v === "object" && v !== null && typeof v.id === "string" &&
    typeof v.name === "string" && Number.isSafeInteger(v.length) &&
    v.length >= 0 && Number.isSafeInteger(v.chunkSize) &&
    typeof v.createdMs === "number" &&
    (v.protocol === "tus" || v.protocol === "ietf");
}
