/**
 * ftv/1 frames: the limits every frame is checked against, and encoding
 * control messages and data chunks into whole frames. Pure: no I/O.
 *
 * Frame: `u32 length` (big-endian, counts what follows) + `u8 kind` + body.
 * - CONTROL body: `u32 crc32(json)` + UTF-8 JSON of a control message.
 * - DATA body: `u32 transferId` + `u32 seq` + `u8 flags` + `u32 crc32` + payload,
 *   where the CRC covers the nine bytes before it and the payload.
 *
 * @module
 */

import { crc32 } from "node:zlib";
import type { ControlMessage } from "./messages.ts";

/** Version spoken in `hello`; a peer with another version gets an error. */
export const PROTOCOL_VERSION = 1;

/** The TCP port an ftv server listens on unless told otherwise. */
export const DEFAULT_PORT = 9999;

/**
 * How a data frame's payload encodes its chunk (the frame's `flags`): as
 * is, compressed, or, with no payload at all, a chunk of zeros (sent only
 * to a peer whose hello listed {@linkcode FEATURE.zeroChunks}).
 */
export const CHUNK_FLAG = { raw: 0, zstd: 1, gzip: 2, zeros: 3 } as const;

/**
 * The flag bit of a parity frame: its payload is Reed-Solomon parity shard
 * `seq & 0xff` of group `seq >>> 8` (groups of the transfer's `fecK` data
 * chunks), which rebuilds lost data chunks without a round trip.
 */
export const PARITY_FLAG = 0x80;

/** Optional abilities a peer lists in its hello's `features`. */
export const FEATURE = {
  /** Understands {@linkcode CHUNK_FLAG.zeros}. */
  zeroChunks: "zero-chunks",
  /** Understands parity frames and `loss` reports (forward error correction). */
  fec: "fec",
} as const;

/** Frame kinds on the wire. */
export const FRAME_KIND = { control: 1, data: 2 } as const;

/** Largest chunk payload a peer may announce or send. */
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
/** Most entries (files and folders) in one `listing`, so it stays under the control cap. */
export const LISTING_PAGE_ENTRIES = 10_000;
/** Largest JSON control message accepted. */
export const MAX_CONTROL_BYTES = 4 * 1024 * 1024;
/** Bytes of a data frame body before the payload. */
export const DATA_HEADER_BYTES = 13;
/** Largest value the length prefix may carry; checked before allocating. */
export const MAX_FRAME_BYTES = 1 + DATA_HEADER_BYTES + MAX_CHUNK_BYTES;
/** Bytes in front of every frame body: the length prefix and the kind. */
export const FRAME_PREFIX_BYTES = 5;

const encoder = new TextEncoder();

/** Encodes a control message as one complete frame. */
export function encodeControl(message: ControlMessage): Uint8Array {
  const json = encoder.encode(JSON.stringify(message));
  if (json.length > MAX_CONTROL_BYTES) {
    throw new RangeError(
      `Cannot encode "${message.type}": ${json.length} bytes exceeds the ${MAX_CONTROL_BYTES}-byte control limit`,
    );
  }
  return controlFrame(json);
}

/**
 * A control frame around `body`, taken as is: the CRC is computed, nothing
 * else is checked. {@linkcode encodeControl} builds on it; tests and the
 * fuzzer use it to send JSON that is not a valid message.
 */
export function controlFrame(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_PREFIX_BYTES + 4 + body.length);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 1 + 4 + body.length);
  frame[4] = FRAME_KIND.control;
  view.setUint32(5, crc32(body));
  frame.set(body, 9);
  return frame;
}

/** Bytes a data frame takes before its payload. */
export const DATA_FRAME_OVERHEAD = FRAME_PREFIX_BYTES + DATA_HEADER_BYTES;

/**
 * Allocates a data frame with room for `payloadLength` bytes at offset
 * {@linkcode DATA_FRAME_OVERHEAD}, so a file can be read straight into it.
 * Call {@linkcode sealDataFrame} once the payload is in place.
 */
export function allocDataFrame(payloadLength: number): Uint8Array {
  if (payloadLength > MAX_CHUNK_BYTES) {
    throw new RangeError(
      `Cannot allocate a data frame: ${payloadLength} bytes exceeds ${MAX_CHUNK_BYTES}`,
    );
  }
  return new Uint8Array(DATA_FRAME_OVERHEAD + payloadLength);
}

/** Writes the header and CRC of a data frame whose payload is already in place. */
export function sealDataFrame(
  frame: Uint8Array,
  transferId: number,
  seq: number,
  flags = 0,
): Uint8Array {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  view.setUint32(0, frame.length - 4);
  frame[4] = FRAME_KIND.data;
  view.setUint32(5, transferId);
  view.setUint32(9, seq);
  frame[13] = flags;
  const headerCrc = crc32(frame.subarray(5, 14));
  view.setUint32(14, crc32(frame.subarray(DATA_FRAME_OVERHEAD), headerCrc));
  return frame;
}

/** Encodes a data frame from a payload (copies it; the sender uses {@linkcode allocDataFrame}). */
export function encodeData(
  transferId: number,
  seq: number,
  payload: Uint8Array,
  flags = 0,
): Uint8Array {
  const frame = allocDataFrame(payload.length);
  frame.set(payload, DATA_FRAME_OVERHEAD);
  return sealDataFrame(frame, transferId, seq, flags);
}

/** Bodies at least this large are read into pooled buffers. */
