/// <reference no-default-lib="true" />
/// <reference lib="esnext" />
/// <reference lib="webworker" />
/**
 * The page's hashing worker: streams a file through hash-wasm's SHA-256
 * (WebAssembly) a few MiB at a time, so a file of any size is hashed in
 * flat memory and off the page's thread (Web Crypto's digest would need
 * the whole file in memory at once). It hashes one job at a time, reports
 * progress, and saves the hasher's state every so often, so a job stopped
 * (a paused upload, a reloaded page) resumes from there instead of from
 * the first byte. Messages: see `hashing.ts`.
 *
 * @module
 */

import { createSHA256, type IHasher } from "hash-wasm";
import type { FromWorker, ToWorker } from "./hashing.ts";

declare const self: DedicatedWorkerGlobalScope;

/** Bytes read at a time. */
const PIECE = 4 * 1024 * 1024;
/** Bytes between saved states. */
const CHECKPOINT_EVERY = 64 * 1024 * 1024;

const hasher: Promise<IHasher> = createSHA256();
const stopped = new Set<number>();
const queue: Extract<ToWorker, { type: "hash" }>[] = [];
let running = false;

function post(message: FromWorker): void {
  self.postMessage(message);
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Reads `blob` in pieces, reusing one buffer where the browser lets it. */
async function* pieces(blob: Blob): AsyncGenerator<Uint8Array> {
  const stream = blob.stream();
  let reader: ReadableStreamBYOBReader | undefined;
  try {
    reader = stream.getReader({ mode: "byob" });
  } catch {
    // A Blob stream that is not a byte stream: plain reads.
  }
  if (!reader) {
    const plain = stream.getReader();
    try {
      for (;;) {
        const { value, done } = await plain.read();
        if (done) return;
        yield value;
      }
    } finally {
      plain.releaseLock();
    }
  }
  let buffer = new Uint8Array(PIECE);
  try {
    for (;;) {
      const { value, done } = await reader.read(buffer);
      if (done || !value) return;
      yield value;
      buffer = new Uint8Array(value.buffer);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

async function hash(job: Extract<ToWorker, { type: "hash" }>): Promise<void> {
  const h = await hasher;
  if (job.from) h.load(fromBase64(job.from.state));
  else h.init();
  let pos = job.from?.pos ?? 0;
  let saved = pos;
  for await (const piece of pieces(job.file.slice(pos))) {
    h.update(piece);
    pos += piece.length;
    if (stopped.has(job.id)) {
      post({ type: "stopped", id: job.id, pos, state: toBase64(h.save()) });
      return;
    }
    post({ type: "progress", id: job.id, pos });
    if (pos - saved >= CHECKPOINT_EVERY && pos < job.file.size) {
      saved = pos;
      post({ type: "checkpoint", id: job.id, pos, state: toBase64(h.save()) });
    }
  }
  if (pos !== job.file.size) {
    throw new Error(`the file ended at ${pos} of ${job.file.size} bytes`);
  }
  post({ type: "done", id: job.id, sha256: h.digest("hex") });
}

async function drain(): Promise<void> {
  if (running) return;
  running = true;
  for (let job = queue.shift(); job; job = queue.shift()) {
    if (stopped.has(job.id)) {
      post({ type: "stopped", id: job.id, ...(job.from ?? {}) });
    } else {
      await hash(job).catch((error: Error) =>
        post({ type: "failed", id: job!.id, message: error.message })
      );
    }
    stopped.delete(job.id);
  }
  running = false;
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.type === "stop") stopped.add(message.id);
  else {
    queue.push(message);
    void drain();
  }
};
