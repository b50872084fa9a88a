/**
 * ftv: move files between machines so that what lands is provably what was
 * sent. This module is the library (client, server, protocol) and, when run
 * directly, the `ftv` command line.
 *
 * @example
 * ```ts
 * import { FtvClient, serve } from "@ftv/cli";
 * await using server = await serve({ host: "127.0.0.1", port: 0, dir: "./ftv-data" });
 * using client = await FtvClient.connect({ host: "127.0.0.1", port: server.addr.port });
 * const result = await client.send("README.md");
 * console.log(result.sha256);
 * ```
 *
 * @module
 */

export { FtvClient } from "./client.ts";
export type {
  ConnectOptions,
  GetOptions,
  SendOptions,
  TransferResult,
} from "./client.ts";
export { serve } from "./server.ts";
export type { FtvServer, ServeOptions } from "./server.ts";
export { ConnectionError, RemoteError } from "./connection.ts";
export { TransferError } from "./transfer.ts";
export type { TransferStats } from "./transfer.ts";
export { hashFile } from "./digest.ts";
export {
  encodeControl,
  encodeData,
  FrameDecoderStream,
  PROTOCOL_VERSION,
  ProtocolError,
} from "./protocol.ts";
export type { ControlMessage, FileEntry, Frame } from "./protocol.ts";
export { EXIT, main } from "./cli.ts";
export { VERSION } from "./version.ts";

import { main } from "./cli.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
