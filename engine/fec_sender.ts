/**
 * The sending side of forward error correction: parity for each group of
 * chunks sent in the first round, computed as the chunks pass (see
 * `parity/group_encoder.ts`) and handed out once a group's last chunk has
 * gone, to follow it on the wire. A group part of which the receiver
 * already held (a resume) gets none: its missing chunks are few and nacked.
 *
 * @module
 */

import type { ChunkBitmap } from "./bitmap.ts";
import { chunkCount } from "./chunks.ts";
import { AUTO_GROUP, AutoParity, type FecMode } from "./fec.ts";
import { GroupEncoder } from "./parity/group_encoder.ts";

/** A group's parity, ready to send. */
export interface GroupParity {
  /** The group's index. */
  group: number;
  /** Its `m` parity shards, valid until the next call of {@linkcode FecSender.sent}. */
  shards: readonly Uint8Array[];
}

/** Parity for one transfer's first round. */
export class FecSender {
  /** Data chunks per group. */
  readonly k: number;
  #fixed: number | undefined;
  #auto: AutoParity | undefined;
  #count: number;
  #shardSize: number;
  #held: ChunkBitmap;
  /** Groups under way: their encoder and how many chunks are still to come. */
  #open = new Map<number, { encoder: GroupEncoder; left: number }>();
  /** Idle encoders by parity count, reused from group to group. */
  #idle = new Map<number, GroupEncoder[]>();
  /** The encoder whose parity was last handed out, given back at the next call. */
  #lent: GroupEncoder | undefined;

  /**
   * Parity as `mode` asks (not `"off"`), for a file of `size` bytes in
   * chunks of `chunkSize`, of which the receiver holds `held`.
   */
  constructor(
    mode: Exclude<FecMode, "off">,
    size: number,
    chunkSize: number,
    held: ChunkBitmap,
  ) {
    this.k = mode === "auto" ? AUTO_GROUP : mode.k;
    this.#fixed = mode === "auto" ? undefined : mode.m;
    this.#auto = mode === "auto" ? new AutoParity() : undefined;
    this.#count = chunkCount(size, chunkSize);
    this.#shardSize = Math.min(chunkSize, size);
    this.#held = held;
  }

  /** The receiver's loss report (`auto` sizes the parity to it). */
  report(lost: number, received: number): void {
    this.#auto?.report(lost, received);
  }

  /**
   * Notes that chunk `seq` (its original bytes) went out in the first round;
   * the parity of its group once that group is complete.
   */
  sent(seq: number, bytes: Uint8Array): GroupParity | undefined {
    this.#giveBack();
    const group = Math.floor(seq / this.k);
    let open = this.#open.get(group);
    if (open === undefined) {
      const m = this.#fixed ?? this.#autoParity(group);
      if (m === 0 || this.#partlyHeld(group)) return undefined;
      open = { encoder: this.#encoder(m), left: this.#groupSize(group) };
      this.#open.set(group, open);
    }
    open.encoder.add(seq - group * this.k, bytes);
    if (--open.left > 0) return undefined;
    this.#open.delete(group);
    this.#lent = open.encoder;
    return { group, shards: open.encoder.parity() };
  }

  /** The `auto` parity of `group`: the current level, one more for the last two groups once there is loss. */
  #autoParity(group: number): number {
    const m = this.#auto!.m;
    const groups = Math.ceil(this.#count / this.k);
    return m > 0 && group >= groups - 2 ? m + 1 : m;
  }

  #groupSize(group: number): number {
    return Math.min(this.k, this.#count - group * this.k);
  }

  #partlyHeld(group: number): boolean {
    const end = group * this.k + this.#groupSize(group);
    for (let seq = group * this.k; seq < end; seq++) {
      if (this.#held.has(seq)) return true;
    }
    return false;
  }

  #encoder(m: number): GroupEncoder {
    return this.#idle.get(m)?.pop() ??
      new GroupEncoder(this.k, m, this.#shardSize);
  }

  #giveBack(): void {
    const lent = this.#lent;
    if (!lent) return;
    this.#lent = undefined;
    lent.reset();
    const idle = this.#idle.get(lent.parityShards) ?? [];
    idle.push(lent);
    this.#idle.set(lent.parityShards, idle);
  }
}
