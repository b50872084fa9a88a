/// <reference lib="dom" />
/**
 * SHA-256 of local files, off the page's thread: a small pool of workers
 * (`hash_worker.ts`), each hashing one file at a time as a stream. A job
 * can be stopped and later resumed from the state it saved, so pausing an
 * upload or reloading the page never means hashing a large file again from
 * its first byte.
 *
 * @module
 */

/** Where a stopped hash stands: bytes hashed and the hasher's saved state (base64). */
export interface Checkpoint {
  pos: number;
  state: string;
}

/** A message to a hashing worker. */
export type ToWorker =
  | { type: "hash"; id: number; file: Blob; from?: Checkpoint }
  | { type: "stop"; id: number };

/** A message from a hashing worker. */
export type FromWorker =
  | { type: "progress"; id: number; pos: number }
  | { type: "checkpoint"; id: number; pos: number; state: string }
  | { type: "done"; id: number; sha256: string }
  | { type: "stopped"; id: number; pos?: number; state?: string }
  | { type: "failed"; id: number; message: string };

/** Options for {@linkcode HashPool.hash}. */
export interface HashOptions {
  /** Resume from this saved state. */
  from?: Checkpoint;
  /** Told the bytes hashed so far. */
  onProgress?: (pos: number) => void;
  /** Told each state saved on the way. */
  onCheckpoint?: (checkpoint: Checkpoint) => void;
}

/** One file being hashed. */
export interface HashJob {
  /** The SHA-256 (hex), once every byte is hashed; rejects when the file cannot be read or the job is stopped. */
  readonly done: Promise<string>;
  /** Stops hashing; resolves with the state to resume from, if any. */
  stop(): Promise<Checkpoint | undefined>;
}

/** Thrown into {@linkcode HashJob.done} when the job was stopped. */
export class HashStopped extends Error {
  override name = "HashStopped";
}

interface Pending {
  message: Extract<ToWorker, { type: "hash" }>;
  options: HashOptions;
  resolve(sha256: string): void;
  reject(error: Error): void;
  stopped?: (checkpoint: Checkpoint | undefined) => void;
  /** The worker hashing it, once it started. */
  slot?: Slot;
}

interface Slot {
  worker: Worker;
  busy: boolean;
}

/**
 * Workers that hash files, at most `size` at once, started when first
 * needed; a job waits for a free worker (so a large file never holds up a
 * small one queued behind it on the same worker).
 */
export class HashPool {
  readonly #url: string;
  readonly #size: number;
  readonly #slots: Slot[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #waiting: number[] = [];
  #next = 1;

  /** A pool of workers running the script at `url`. */
  constructor(url: string, size = 3) {
    this.#url = url;
    this.#size = size;
  }

  /** Starts hashing `file` (once a worker is free). */
  hash(file: Blob, options: HashOptions = {}): HashJob {
    const id = this.#next++;
    const message: ToWorker = {
      type: "hash",
      id,
      file,
      ...(options.from ? { from: options.from } : {}),
    };
    const done = new Promise<string>((resolve, reject) => {
      this.#pending.set(id, { message, options, resolve, reject });
    });
    done.catch(() => undefined);
    this.#waiting.push(id);
    this.#dispatch();
    return { done, stop: () => this.#stop(id) };
  }

  #stop(id: number): Promise<Checkpoint | undefined> {
    const pending = this.#pending.get(id);
    if (!pending) return Promise.resolve(undefined);
    if (!pending.slot) {
      this.#pending.delete(id);
      this.#waiting.splice(this.#waiting.indexOf(id), 1);
      pending.reject(new HashStopped("hashing was stopped"));
      return Promise.resolve(pending.options.from);
    }
    const { worker } = pending.slot;
    return new Promise((resolve) => {
      pending.stopped = resolve;
      worker.postMessage({ type: "stop", id } satisfies ToWorker);
    });
  }

  /** Hands waiting jobs to free workers, starting workers up to the size. */
  #dispatch(): void {
    while (this.#waiting.length > 0) {
      let slot = this.#slots.find((candidate) => !candidate.busy);
      if (!slot && this.#slots.length < this.#size) slot = this.#start();
      if (!slot) return;
      const pending = this.#pending.get(this.#waiting.shift()!)!;
      slot.busy = true;
      pending.slot = slot;
      slot.worker.postMessage(pending.message);
    }
  }

  #start(): Slot {
    const worker = new Worker(this.#url, { type: "module", name: "ftv-hash" });
    const slot: Slot = { worker, busy: false };
    worker.onmessage = (event: MessageEvent<FromWorker>) =>
      this.#receive(slot, event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      this.#fail(slot, `the hashing worker failed: ${event.message}`);
    };
    this.#slots.push(slot);
    return slot;
  }

  #receive(slot: Slot, message: FromWorker): void {
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    if (message.type === "progress") {
      pending.options.onProgress?.(message.pos);
      return;
    }
    if (message.type === "checkpoint") {
      pending.options.onCheckpoint?.({
        pos: message.pos,
        state: message.state,
      });
      return;
    }
    this.#pending.delete(message.id);
    slot.busy = false;
    if (message.type === "done") {
      pending.resolve(message.sha256);
      pending.stopped?.(undefined);
    } else if (message.type === "stopped") {
      const checkpoint = message.pos !== undefined && message.state
        ? { pos: message.pos, state: message.state }
        : pending.options.from;
      pending.reject(new HashStopped("hashing was stopped"));
      pending.stopped?.(checkpoint);
    } else {
      pending.reject(new Error(`Cannot hash the file: ${message.message}`));
      pending.stopped?.(undefined);
    }
    this.#dispatch();
  }

  #fail(slot: Slot, reason: string): void {
    for (const [id, pending] of this.#pending) {
      if (pending.slot !== slot) continue;
      this.#pending.delete(id);
      pending.reject(new Error(`Cannot hash the file: ${reason}`));
      pending.stopped?.(undefined);
    }
    slot.worker.terminate();
    this.#slots.splice(this.#slots.indexOf(slot), 1);
    this.#dispatch();
  }
}
