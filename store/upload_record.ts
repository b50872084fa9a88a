/**
 * The record of a resumable HTTP upload (tus or the IETF draft): what it
 * will be stored as and how long it is, kept in the store (see
 * `UploadRecordStore`) so any server, or a restarted one, can continue it.
 *
 * @module
 */

import type { Manifest } from "../engine/resume_state.ts";

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
  /**
   * The client sends the whole file's SHA-256 after the last byte (tus
   * metadata `digest-follows: sha-256`; a browser knows it only once it has
   * read the whole file): every byte held, the upload waits unnamed for a
   * request at its end that carries `Repr-Digest`.
   */
  digestFollows?: boolean;
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

/** A fresh upload id. */
export function newUploadId(): string {
  return crypto.randomUUID().replaceAll("-", "");
}

/** Whether `id` has the form of an upload id (checked before it reaches a path or key). */
export function isUploadId(id: string): boolean {
  return ID.test(id);
}

/** `text` as the record of `id`, when it parses as one. */
export function parseRecord(
  text: string,
  id: string,
): UploadRecord | undefined {
  try {
    const v = JSON.parse(text) as UploadRecord;
    const valid = typeof v === "object" && v !== null &&
      typeof v.id === "string" && typeof v.name === "string" &&
      Number.isSafeInteger(v.length) && v.length >= 0 &&
      Number.isSafeInteger(v.chunkSize) && typeof v.createdMs === "number" &&
      (v.protocol === "tus" || v.protocol === "ietf");
    return valid && v.id === id ? v : undefined;
  } catch {
    return undefined;
  }
}
