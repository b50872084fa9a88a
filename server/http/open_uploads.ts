/**
 * The part files of resumable uploads this process holds open between
 * requests: a `PATCH` that follows another on the same upload finds its
 * store claimed, its digest state warm (no re-hash of what is held), and
 * the name kept busy. A store idle for the idle timeout is checkpointed and
 * let go, so another process on the store (or this one after a restart)
 * can claim it; a request finding it held elsewhere is told `busy`. A
 * store other servers share (S3) is let go after every request instead,
 * so the next request may go to any server; this one keeps only the
 * running digest of it (see `store/s3/claim.ts`).
 *
 * @module
 */

import { ERROR_CODE, type Outcome, refusal } from "../../base/errors.ts";
import { manifestOf, type Upload, type UploadRecord } from "../../store.ts";
import type { ServerContext } from "../context.ts";

interface Held {
  store: Upload;
  name: string;
  busy: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const BUSY = refusal(
  ERROR_CODE.busy,
  "another request is writing this upload; try again shortly",
);

/** Claimed stores of uploads, by upload id. */
export class OpenUploads {
  #ctx: ServerContext;
  #idleMs: number;
  #held = new Map<string, Held>();
  #claiming = new Set<string>();
  /** Stores being let go: a request for one waits until it is. */
  #closing = new Map<string, Promise<void>>();

  /** Stores of `ctx`'s uploads, let go after `idleMs` unused. */
  constructor(ctx: ServerContext, idleMs: number) {
    this.#ctx = ctx;
    this.#idleMs = idleMs;
  }

  /**
   * The store of `record` for one request, claimed now or kept from the
   * last one; `busy` when a request here or another process holds it. A
   * part file whose state is missing or unreadable cannot be checked (HTTP
   * clients send no chunk checksums) and starts afresh. Give it back with
   * {@linkcode release} or {@linkcode forget}.
   */
  async acquire(record: UploadRecord): Promise<Outcome<Upload>> {
    await this.#closing.get(record.id);
    const held = this.#held.get(record.id);
    if (held) {
      if (held.busy) return { ok: false, refusal: BUSY };
      clearTimeout(held.timer);
      held.busy = true;
      return { ok: true, value: held.store };
    }
    if (this.#claiming.has(record.id)) return { ok: false, refusal: BUSY };
    this.#claiming.add(record.id);
    try {
      const claimed = await this.#claim(record);
      if (!claimed.ok) return claimed;
      this.#held.set(record.id, {
        store: claimed.value,
        name: record.name,
        busy: true,
        timer: undefined,
      });
      this.#ctx.busyNames.add(record.name);
      return claimed;
    } finally {
      this.#claiming.delete(record.id);
    }
  }

  /**
   * The bytes `record`'s store holds: read from the store this process
   * keeps without taking it (a request about to write it never meets a
   * busy answer because of a mere look), else claimed and let go at once.
   */
  async heldBytes(record: UploadRecord): Promise<Outcome<number>> {
    await this.#closing.get(record.id);
    const held = this.#held.get(record.id);
    if (held) {
      return held.busy
        ? { ok: false, refusal: BUSY }
        : { ok: true, value: held.store.heldBytes };
    }
    const lease = await this.acquire(record);
    if (!lease.ok) return lease;
    const bytes = lease.value.heldBytes;
    this.release(record.id);
    return { ok: true, value: bytes };
  }

  async #claim(record: UploadRecord): Promise<Outcome<Upload>> {
    const { store, fsync } = this.#ctx;
    const claim = () =>
      store.receive(manifestOf(record), {
        fsync,
        attributes: {
          ...(record.mode === undefined ? {} : { mode: record.mode }),
          ...(record.mtimeMs === undefined ? {} : { mtimeMs: record.mtimeMs }),
        },
      });
    const refused = store.prepare(record.name);
    if (refused) return { ok: false, refusal: refused };
    const claimed = await claim();
    if (!claimed.ok || !claimed.value.needsVerification) {
      return claimed.ok ? claimed : { ok: false, refusal: BUSY };
    }
    await claimed.value.discard();
    return await claim();
  }

  /** The request is done: the store stays claimed for the next one until idle (not at all when shared). */
  release(id: string): void {
    const held = this.#held.get(id);
    if (!held) return;
    held.busy = false;
    if (this.#ctx.store.shared) return void this.#closeQuietly(id, held.name);
    held.timer = setTimeout(
      () => this.#closeQuietly(id, held.name),
      this.#idleMs,
    );
  }

  #closeQuietly(id: string, name: string): void {
    const closing = this.close(id).catch((error) =>
      this.#ctx.log.warn(
        `Cannot save the resume state of ${name}: ${error.message}`,
      )
    ).finally(() => this.#closing.delete(id));
    this.#closing.set(id, closing);
  }

  /** Forgets the store of `id`, already finalised or discarded. */
  forget(id: string): void {
    const held = this.#held.get(id);
    if (!held) return;
    clearTimeout(held.timer);
    this.#held.delete(id);
    this.#ctx.busyNames.delete(held.name);
  }

  /** Checkpoints the store of `id` and lets it go, keeping the part file. */
  async close(id: string): Promise<void> {
    const held = this.#held.get(id);
    if (!held) return;
    this.forget(id);
    await held.store.suspend();
  }

  /** Lets every store go (the server is stopping). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#held.keys()].map((id) => this.close(id)));
    await Promise.all(this.#closing.values());
  }
}
