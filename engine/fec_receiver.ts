/**
 * The receiving side of forward error correction: parity frames are kept
 * per group, and a group's lost or damaged chunks are rebuilt from them as
 * soon as there is enough parity, written and marked like received ones.
 * What parity cannot cover is left to the early asks (a chunk is late once
 * its group's parity has passed) and repair rounds. Once a group's data has
 * passed (a later group's parity, or chunks a reorder window into the next
 * group, arrived) it is reported in a `loss` message, which `auto` parity
 * on the sending side is sized by.
 *
 * @module
 */

import type { Logger } from "../base/log.ts";
import type { ControlMessage } from "../protocol.ts";
import type { ChunkSink } from "./chunk_sink.ts";
import { chunkLength } from "./chunks.ts";
import { zeros } from "./compression.ts";
import { parityOf } from "./fec.ts";
import { OVERDUE_DISTANCE } from "./transfer.ts";
import { ReedSolomon } from "./parity/reed_solomon.ts";

/** Most bytes of parity kept waiting for their groups; beyond, the oldest groups' go. */
const MAX_PARITY_BYTES = 32 * 1024 * 1024;

/** Options for {@linkcode FecReceiver}. */
export interface FecReceiverOptions {
  /** Data chunks per group, as the sender announced. */
  k: number;
  transferId: number;
  /** Where chunks are written, and read back to rebuild others. */
  store: ChunkSink;
  /** Sends a control message (a `loss` report) to the sender. */
  send(message: ControlMessage): Promise<void>;
  /** Whether chunk `seq` is held or on its way into the store (accepted). */
  has(seq: number): boolean;
  /** Takes a rebuilt chunk as if it had been received. */
  accept(seq: number, bytes: Uint8Array): Promise<void>;
  log?: Logger;
}

interface Group {
  parity: Map<number, Uint8Array>;
  closed: boolean;
  /** Chunks of the group rebuilt from parity: lost on the way, as reported. */
  rebuilt: number;
}

/** Rebuilds a transfer's lost chunks from the parity that follows each group. */
export class FecReceiver {
  #options: FecReceiverOptions;
  #groups = new Map<number, Group>();
  #parityBytes = 0;
  #codes = new Map<number, ReedSolomon>();
  /** Chunks rebuilt so far. */
  rebuilt = 0;

  /** Parity for the transfer `options` describes. */
  constructor(options: FecReceiverOptions) {
    this.#options = options;
  }

  /**
   * A data frame for `seq` arrived (whole or not): groups it is a reorder
   * window past are over; one it completes may now be rebuilt.
   */
  async data(seq: number): Promise<void> {
    const { k } = this.#options;
    await this.#closeBefore(Math.floor((seq - OVERDUE_DISTANCE) / k));
    const group = Math.floor(seq / k);
    const open = this.#groups.get(group);
    if (open && open.parity.size > 0) await this.#tryRebuild(group, open);
  }

  /** Parity frame `seq` arrived intact; `payload` is copied. */
  async parity(seq: number, payload: Uint8Array): Promise<void> {
    const { group, j } = parityOf(seq);
    await this.#closeBefore(group);
    if (this.#complete(group)) return;
    const entry = this.#entry(group);
    if (!entry.parity.has(j)) {
      entry.parity.set(j, payload.slice());
      this.#parityBytes += payload.length;
      this.#evictBeyondBudget();
    }
    await this.#tryRebuild(group, entry);
  }

  /**
   * The sender said `done`: every group's data has passed. Rebuilds what
   * parity covers, then drops the parity; the rest is for repair rounds.
   */
  async finish(): Promise<void> {
    for (const [group, entry] of [...this.#groups]) {
      await this.#tryRebuild(group, entry);
    }
    this.#groups.clear();
    this.#parityBytes = 0;
  }

  async #closeBefore(limit: number): Promise<void> {
    const first = this.#firstOpen();
    for (let group = first; group < limit; group++) {
      const entry = this.#entry(group);
      if (entry.closed) continue;
      entry.closed = true;
      await this.#report(group);
      await this.#tryRebuild(group, entry);
    }
  }

  #firstOpen(): number {
    let first = Infinity;
    for (const [group, entry] of this.#groups) {
      if (!entry.closed && group < first) first = group;
    }
    return first === Infinity ? this.#lowestUnreported : first;
  }

  #lowestUnreported = 0;

  /** Sends the `loss` report of a group whose data has passed: missing now, or rebuilt. */
  async #report(group: number): Promise<void> {
    const missing = this.#missing(group).length +
      (this.#groups.get(group)?.rebuilt ?? 0);
    const size = this.#seqs(group).length;
    this.#lowestUnreported = Math.max(this.#lowestUnreported, group + 1);
    await this.#options.send({
      type: "loss",
      transferId: this.#options.transferId,
      lost: missing,
      received: size,
    });
  }

  /** Rebuilds `group` when its parity covers what it misses. */
  async #tryRebuild(group: number, entry: Group): Promise<void> {
    const missing = this.#missing(group);
    if (missing.length === 0) return this.#forget(group);
    if (missing.length > entry.parity.size) return;
    await this.#rebuild(group, entry, missing);
    this.#forget(group);
  }

  async #rebuild(
    group: number,
    entry: Group,
    missing: number[],
  ): Promise<void> {
    const { k, store, log } = this.#options;
    const { size, chunkSize } = store.manifest;
    const shardSize = Math.min(chunkSize, size);
    const m = Math.max(...entry.parity.keys()) + 1;
    const shards: (Uint8Array | undefined)[] = [];
    for (let i = 0; i < k; i++) {
      const seq = group * k + i;
      if (seq >= store.count) shards.push(zeros(shardSize));
      else if (missing.includes(seq)) shards.push(undefined);
      else {
        const chunk = new Uint8Array(shardSize);
        try {
          await store.readChunk(
            seq,
            chunk.subarray(0, chunkLength(seq, size, chunkSize)),
          );
        } catch {
          return; // Not readable back (an S3 part already sent): asked for again instead.
        }
        shards.push(chunk);
      }
    }
    for (let j = 0; j < m; j++) shards.push(entry.parity.get(j));
    const code = this.#code(m);
    const result = code.reconstruct(shards, { dataOnly: true });
    if (!result.ok) return;
    for (const i of result.rebuilt) {
      const seq = group * k + i;
      if (seq >= store.count) continue;
      await this.#options.accept(
        seq,
        shards[i]!.subarray(0, chunkLength(seq, size, chunkSize)),
      );
      this.rebuilt++;
      entry.rebuilt++;
      log?.info(`Rebuilt chunk ${seq} from parity (group ${group})`);
    }
  }

  #code(m: number): ReedSolomon {
    let code = this.#codes.get(m);
    if (!code) {
      code = new ReedSolomon(this.#options.k, m);
      this.#codes.set(m, code);
    }
    return code;
  }

  #seqs(group: number): number[] {
    const { k, store } = this.#options;
    const first = group * k;
    const last = Math.min(store.count, first + k);
    return Array.from(
      { length: Math.max(0, last - first) },
      (_, i) => first + i,
    );
  }

  #missing(group: number): number[] {
    return this.#seqs(group).filter((seq) => !this.#options.has(seq));
  }

  #complete(group: number): boolean {
    return this.#missing(group).length === 0;
  }

  #entry(group: number): Group {
    let entry = this.#groups.get(group);
    if (!entry) {
      entry = { parity: new Map(), closed: false, rebuilt: 0 };
      this.#groups.set(group, entry);
    }
    return entry;
  }

  #forget(group: number): void {
    const entry = this.#groups.get(group);
    if (!entry) return;
    for (const shard of entry.parity.values()) {
      this.#parityBytes -= shard.length;
    }
    entry.parity.clear();
    if (entry.closed) this.#groups.delete(group);
  }

  #evictBeyondBudget(): void {
    for (const [group, entry] of this.#groups) {
      if (this.#parityBytes <= MAX_PARITY_BYTES) return;
      for (const shard of entry.parity.values()) {
        this.#parityBytes -= shard.length;
      }
      entry.parity.clear();
      if (entry.closed) this.#groups.delete(group);
    }
  }
}
