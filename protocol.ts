/**
 * The ftv/1 wire format: length-prefixed frames carrying either a JSON control
 * message or a binary data chunk, each protected by a CRC-32.
 *
 * Frame: `u32 length` (big-endian, counts what follows) + `u8 kind` + body.
 * - CONTROL body: `u32 crc32(json)` + UTF-8 JSON of a {@linkcode ControlMessage}.
 * - DATA body: `u32 transferId` + `u32 seq` + `u8 flags` + `u32 crc32` + payload,
 *   where the CRC covers the nine bytes before it and the payload.
 *
 * Pure: no `Deno.*` here or below; sockets live in `net/`. The pieces:
 * `protocol/frames.ts` (limits, encoding), `protocol/messages.ts` (control
 * messages and their parser), `protocol/frame_reader.ts` (decoding),
 * `protocol/names.ts` (which names a peer may use).
 *
 * @example
 * ```ts
 * import { encodeControl, FrameDecoderStream } from "./protocol.ts";
 * const bytes = ReadableStream.from([encodeControl({ type: "list" })]);
 * for await (const frame of bytes.pipeThrough(new FrameDecoderStream())) {
 *   console.log(frame.kind);
 * }
 * ```
 *
 * @module
 */

export * from "./protocol/frames.ts";
export * from "./protocol/messages.ts";
export * from "./protocol/frame_reader.ts";
