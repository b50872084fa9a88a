/// <reference lib="dom" />
/**
 * What the upload queue remembers across a reload or a crash of the tab:
 * each item's name, size, date, upload URL, digest and saved hashing state
 * in local storage, and, where the browser can give one (Chromium, for
 * files dropped on the page), a handle to the file in IndexedDB, so the
 * file can be opened again with one click instead of picked again.
 *
 * @module
 */

import type { Checkpoint } from "./hashing.ts";

/** One queue item as it is kept. */
export interface SavedItem {
  id: string;
  name: string;
  size: number;
  lastModified: number;
  /** `waiting` for an unfinished one, else how it ended. */
  state: "waiting" | "verified" | "failed";
  sent: number;
  sha256?: string;
  uploadUrl?: string;
  checkpoint?: Checkpoint;
  reason?: string;
}

const KEY = "ftv.queue.v1";
/** Finished items kept for the record. */
const KEEP_FINISHED = 200;

/** The items saved last, oldest first. */
export function loadItems(): SavedItem[] {
  try {
    const items = JSON.parse(localStorage.getItem(KEY) ?? "[]");
    return Array.isArray(items) ? items.filter(isSavedItem) : [];
  } catch {
    return [];
  }
}

/** Saves `items`, dropping the oldest finished ones past the limit. */
export function saveItems(items: readonly SavedItem[]): void {
  const finished = items.filter((item) => item.state !== "waiting");
  const drop = new Set(
    finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED)),
  );
  try {
    localStorage.setItem(
      KEY,
      JSON.stringify(items.filter((item) => !drop.has(item))),
    );
  } catch {
    // Storage full or denied: the queue still works, it just forgets on reload.
  }
}

function isSavedItem(value: unknown): value is SavedItem {
  const item = value as SavedItem;
  return typeof item === "object" && item !== null &&
    typeof item.id === "string" && typeof item.name === "string" &&
    Number.isSafeInteger(item.size) && typeof item.lastModified === "number" &&
    ["waiting", "verified", "failed"].includes(item.state);
}

const DB = "ftv";
const STORE = "handles";

function openDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function transact<T>(
  mode: IDBTransactionMode,
  action: (store: IDBObjectStore) => IDBRequest<T>,
): Promise<T | undefined> {
  if (typeof indexedDB === "undefined") return undefined;
  try {
    const db = await openDb();
    try {
      return await new Promise<T>((resolve, reject) => {
        const request = action(db.transaction(STORE, mode).objectStore(STORE));
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    } finally {
      db.close();
    }
  } catch {
    return undefined;
  }
}

/** Keeps the handle of item `id`'s file. */
export async function saveHandle(
  id: string,
  handle: FileSystemFileHandle,
): Promise<void> {
  await transact("readwrite", (store) => store.put(handle, id));
}

/** The kept handle of item `id`'s file, if any. */
export async function loadHandle(
  id: string,
): Promise<FileSystemFileHandle | undefined> {
  const handle = await transact("readonly", (store) => store.get(id));
  return typeof (handle as FileSystemFileHandle | undefined)?.getFile ===
      "function"
    ? handle as FileSystemFileHandle
    : undefined;
}

/** Forgets the handle of item `id`. */
export async function dropHandle(id: string): Promise<void> {
  await transact("readwrite", (store) => store.delete(id));
}

/** The file behind `handle`, asking the user for access when the browser wants that (call from a click). */
export async function fileOfHandle(
  handle: FileSystemFileHandle,
): Promise<File | undefined> {
  const permissions = handle as FileSystemFileHandle & {
    queryPermission?(options: { mode: string }): Promise<PermissionState>;
    requestPermission?(options: { mode: string }): Promise<PermissionState>;
  };
  try {
    let state = await permissions.queryPermission?.({ mode: "read" });
    if (state !== undefined && state !== "granted") {
      state = await permissions.requestPermission?.({ mode: "read" });
    }
    if (state !== undefined && state !== "granted") return undefined;
    return await handle.getFile();
  } catch {
    return undefined;
  }
}
