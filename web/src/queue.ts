/// <reference lib="dom" />
/**
 * The upload queue: every file the user gave the page, what phase it is
 * in, and the few running at once (pipelined: while one waits for its
 * last answer the next ones are already sending). Each running file is
 * hashed (`hashing.ts`) while it uploads (`upload.ts`), and ends
 * `verified` only when the digest the server answers equals the one the
 * browser read. The queue is saved (`persist.ts`) so a reloaded page shows
 * what was in flight and resumes it once it has the file again.
 *
 * @module
 */

import { storedDigest, tusHeaders } from "./api.ts";
import { RateMeter } from "./format.ts";
import type { Checkpoint, HashJob, HashPool } from "./hashing.ts";
import {
  dropHandle,
  loadItems,
  type SavedItem,
  saveHandle,
  saveItems,
} from "./persist.ts";
import { type RunningUpload, startUpload, UploadError } from "./upload.ts";

/** Files sending at once. */
export const CONCURRENCY = 3;

/** Where one file stands. */
export type Phase =
  | { type: "queued" }
  | { type: "running" }
  | { type: "retrying"; reason: string }
  | { type: "finishing" }
  | { type: "paused" }
  | { type: "needs-file" }
  | { type: "verified"; sha256: string }
  | { type: "failed"; reason: string; status: number }
  | { type: "cancelled" };

/** A file picked or dropped: the file, its path below what was picked, and a handle when the browser gave one. */
export interface Picked {
  file: File;
  path: string;
  handle?: FileSystemFileHandle;
}

/** One file in the queue. */
export interface QueueItem {
  readonly id: string;
  /** The name it is stored under. */
  readonly name: string;
  readonly size: number;
  readonly lastModified: number;
  phase: Phase;
  /** Bytes sent. */
  sent: number;
  /** Bytes the server acknowledged in this page's life. */
  accepted: number;
  /** Bytes hashed. */
  hashed: number;
  /** The SHA-256 the browser read, once known. */
  sha256?: string;
  /** Where the server last said it stood when the upload was resumed (more than 0). */
  resumedFrom?: number;
  readonly meter: RateMeter;
  file?: File;
  handle?: FileSystemFileHandle;
  uploadUrl?: string;
  checkpoint?: Checkpoint;
  run?: RunningUpload;
  hashJob?: HashJob;
}

/** Phases in which an item still has work to do. */
const UNFINISHED = new Set<Phase["type"]>([
  "queued",
  "running",
  "retrying",
  "finishing",
  "paused",
  "needs-file",
]);

/** Whether `item` is sending (or about to). */
export function isActive(item: QueueItem): boolean {
  const { type } = item.phase;
  return type === "running" || type === "retrying" || type === "finishing";
}

/** Whether `item` still has work to do. */
export function isUnfinished(item: QueueItem): boolean {
  return UNFINISHED.has(item.phase.type);
}

/** The queue; listen for `change` to redraw. */
export class UploadQueue extends EventTarget {
  readonly items: QueueItem[] = [];
  readonly #pool: HashPool;
  #saveTimer: ReturnType<typeof setTimeout> | undefined;

  /** A queue hashing with `pool`, holding what the last page saved. */
  constructor(pool: HashPool) {
    super();
    this.#pool = pool;
    for (const saved of loadItems()) this.items.push(restored(saved));
  }

  /** Adds picked files under `prefix`; a file a waiting item needs is given back to it. */
  add(picked: readonly Picked[], prefix: string): number {
    let added = 0;
    for (const { file, path, handle } of picked) {
      const waiting = this.items.find((item) =>
        item.phase.type === "needs-file" && sameFile(item, file)
      );
      if (waiting) {
        this.attach(waiting, file, handle);
        continue;
      }
      const name = prefix + path;
      if (this.items.some((item) => item.name === name && isUnfinished(item))) {
        continue;
      }
      const item: QueueItem = {
        id: crypto.randomUUID(),
        name,
        size: file.size,
        lastModified: file.lastModified,
        phase: { type: "queued" },
        sent: 0,
        accepted: 0,
        hashed: 0,
        meter: new RateMeter(),
        file,
        ...(handle ? { handle } : {}),
      };
      if (handle) void saveHandle(item.id, handle);
      this.items.push(item);
      added++;
    }
    this.#changed(true);
    this.#pump();
    return added;
  }

  /** Gives a waiting item its file again and queues it. */
  attach(item: QueueItem, file: File, handle?: FileSystemFileHandle): void {
    item.file = file;
    if (handle) item.handle = handle;
    item.phase = { type: "queued" };
    this.#changed(true);
    this.#pump();
  }

  /** Stops sending `item`; the server keeps what it has. */
  async pause(item: QueueItem): Promise<void> {
    if (!isActive(item) && item.phase.type !== "queued") return;
    item.phase = { type: "paused" };
    await this.#halt(item);
    this.#changed(true);
    this.#pump();
  }

  /** Sends `item` again from where the server stands. */
  resume(item: QueueItem): void {
    const { type } = item.phase;
    if (type !== "paused" && type !== "failed") return;
    item.phase = item.file ? { type: "queued" } : { type: "needs-file" };
    this.#changed(true);
    this.#pump();
  }

  /** Stops `item` and has the server forget its upload. */
  async cancel(item: QueueItem): Promise<void> {
    if (!isUnfinished(item) && item.phase.type !== "failed") return;
    item.phase = { type: "cancelled" };
    await this.#halt(item);
    if (item.uploadUrl) await forgetUpload(item.uploadUrl);
    void dropHandle(item.id);
    this.#changed(true);
    this.#pump();
  }

  /** Pauses every item that is sending or queued. */
  async pauseAll(): Promise<void> {
    await Promise.all(this.items.map((item) => this.pause(item)));
  }

  /** Resumes every paused item. */
  resumeAll(): void {
    for (const item of this.items) this.resume(item);
  }

  /** Drops finished items from the list. */
  clearFinished(): void {
    const keep = this.items.filter(isUnfinished);
    this.items.splice(0, this.items.length, ...keep);
    this.#changed(true);
  }

  /**
   * Retries every item that failed with HTTP `status`: 401 once the user
   * logged in, 0 (no answer) once the device is back online.
   */
  retryFailed(status: number): void {
    for (const item of this.items) {
      if (item.phase.type === "failed" && item.phase.status === status) {
        this.resume(item);
      }
    }
  }

  /** Stops sending and hashing `item`, keeping where its hash got. */
  async #halt(item: QueueItem): Promise<void> {
    const { run, hashJob } = item;
    item.run = undefined;
    item.hashJob = undefined;
    run?.pause();
    const checkpoint = await hashJob?.stop();
    if (checkpoint && !item.sha256) item.checkpoint = checkpoint;
    item.meter.reset();
  }

  /** Starts queued items while fewer than {@linkcode CONCURRENCY} are sending. */
  #pump(): void {
    let active = this.items.filter(isActive).length;
    for (const item of this.items) {
      if (active >= CONCURRENCY) return;
      if (item.phase.type !== "queued" || !item.file) continue;
      active++;
      void this.#run(item, item.file);
    }
  }

  /** The digest of `item`'s file: known, or hashed now (from a saved state when there is one). */
  #digest(item: QueueItem, file: File): Promise<string> {
    if (item.sha256) return Promise.resolve(item.sha256);
    const job = this.#pool.hash(file, {
      ...(item.checkpoint ? { from: item.checkpoint } : {}),
      onProgress: (pos) => {
        item.hashed = pos;
        this.#changed(false);
      },
      onCheckpoint: (checkpoint) => {
        item.checkpoint = checkpoint;
        this.#changed(false);
      },
    });
    item.hashJob = job;
    return job.done.then((sha256) => {
      item.sha256 = sha256;
      item.hashed = item.size;
      item.checkpoint = undefined;
      return sha256;
    });
  }

  async #run(item: QueueItem, file: File): Promise<void> {
    item.phase = { type: "running" };
    item.meter.reset();
    const digest = this.#digest(item, file);
    digest.catch(() => undefined);
    const run = startUpload({
      file,
      name: item.name,
      ...(item.uploadUrl ? { uploadUrl: item.uploadUrl } : {}),
      digest: () => digest,
    }, this.#events(item));
    item.run = run;
    this.#changed(true);
    try {
      const { serverSha256 } = await run.done;
      const local = await digest;
      const server = serverSha256 ?? await storedDigest(item.name);
      item.phase = server === local
        ? { type: "verified", sha256: local }
        : failed(
          `the server holds SHA-256 ${
            server ?? "(none)"
          }, not the ${local} this browser read`,
        );
      if (item.phase.type === "verified") {
        item.sent = item.size;
        void dropHandle(item.id);
      }
    } catch (error) {
      if (item.run !== run) return;
      await this.#halt(item);
      const status = error instanceof UploadError ? error.status : -1;
      item.phase = failed((error as Error).message, status);
    }
    item.run = undefined;
    item.hashJob = undefined;
    this.#changed(true);
    this.#pump();
  }

  #events(item: QueueItem) {
    return {
      onProgress: (bytes: number) => {
        item.sent = bytes;
        item.meter.add(bytes);
        if (item.phase.type === "retrying") item.phase = { type: "running" };
        this.#changed(false);
      },
      onAccepted: (bytes: number) => {
        item.accepted = bytes;
        this.#changed(false);
      },
      onUrl: (url: string) => {
        item.uploadUrl = url;
        this.#changed(true);
      },
      onResumed: (offset: number) => {
        if (offset > 0) item.resumedFrom = offset;
        item.sent = offset;
        item.meter.reset();
        this.#changed(true);
      },
      onRetry: (reason: string) => {
        item.phase = { type: "retrying", reason };
        item.meter.reset();
        this.#changed(true);
      },
      onAwaitingDigest: () => {
        item.phase = { type: "finishing" };
        this.#changed(true);
      },
    };
  }

  /** Tells the views; saves now when `save`, else within a second. */
  #changed(save: boolean): void {
    this.dispatchEvent(new Event("change"));
    if (save) {
      clearTimeout(this.#saveTimer);
      this.#saveTimer = undefined;
      saveItems(
        this.items.filter((i) => i.phase.type !== "cancelled").map(saved),
      );
    } else if (this.#saveTimer === undefined) {
      this.#saveTimer = setTimeout(() => this.#changed(true), 1000);
    }
  }
}

/**
 * Asks the server to drop an upload (tus termination), trying again for a
 * few seconds while the request just stopped still holds it (423).
 */
async function forgetUpload(url: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const status = await fetch(url, {
      method: "DELETE",
      headers: tusHeaders(),
    }).then(async (response) => {
      await response.body?.cancel();
      return response.status;
    }, () => 0);
    if (status !== 423 && status !== 0) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** A failure; `status` is the HTTP status, 0 when there was no answer, -1 when it was not the server's. */
function failed(reason: string, status = -1): Phase {
  return { type: "failed", reason, status };
}

/** Whether `file` is the one `item` was made from (a page cannot keep the file itself). */
function sameFile(item: QueueItem, file: File): boolean {
  const base = item.name.slice(item.name.lastIndexOf("/") + 1);
  return item.size === file.size && item.lastModified === file.lastModified &&
    base === file.name;
}

function saved(item: QueueItem): SavedItem {
  const { phase } = item;
  return {
    id: item.id,
    name: item.name,
    size: item.size,
    lastModified: item.lastModified,
    state: phase.type === "verified"
      ? "verified"
      : phase.type === "failed"
      ? "failed"
      : "waiting",
    sent: item.sent,
    ...(item.sha256 ? { sha256: item.sha256 } : {}),
    ...(item.uploadUrl ? { uploadUrl: item.uploadUrl } : {}),
    ...(item.checkpoint ? { checkpoint: item.checkpoint } : {}),
    ...(phase.type === "failed" ? { reason: phase.reason } : {}),
  };
}

function restored(item: SavedItem): QueueItem {
  const phase: Phase = item.state === "verified"
    ? { type: "verified", sha256: item.sha256 ?? "" }
    : item.state === "failed"
    ? failed(item.reason ?? "failed")
    : { type: "needs-file" };
  return {
    id: item.id,
    name: item.name,
    size: item.size,
    lastModified: item.lastModified,
    phase,
    sent: item.sent,
    accepted: 0,
    hashed: item.checkpoint?.pos ?? (item.sha256 ? item.size : 0),
    meter: new RateMeter(),
    ...(item.sha256 ? { sha256: item.sha256 } : {}),
    ...(item.uploadUrl ? { uploadUrl: item.uploadUrl } : {}),
    ...(item.checkpoint ? { checkpoint: item.checkpoint } : {}),
  };
}
