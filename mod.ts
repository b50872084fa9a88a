/**
 * ftv: move files between machines so that what lands is provably what was
 * sent. This module is the library (client, server, protocol) and, when run
 * directly, the `ftv` command line.
 *
 * @example
 * ```ts
 * import { send, serve } from "@ftv/cli";
 * await using server = await serve({ host: "127.0.0.1", port: 0, dir: "./ftv-data" });
 * const result = await send("README.md", { host: "127.0.0.1", port: server.addr.port });
 * console.log(result.sha256);
 * ```
 *
 * @module
 */

export { FtvClient, get, roundTrip, send } from "./client.ts";
export type {
  ClientOptions,
  ConnectOptions,
  GetOptions,
  SendOptions,
  TransferOptions,
  TransferResult,
} from "./client.ts";
export { getTree, sendTree, walkTree } from "./tree.ts";
export type { CompressionMode } from "./compression.ts";
export type { ProgressEvent } from "./progress.ts";
export type {
  TreeEntry,
  TreeFile,
  TreeOptions,
  TreeResult,
  Walk,
  WalkOptions,
} from "./tree.ts";
export { serve } from "./server.ts";
export { startProxy } from "./proxy.ts";
export type {
  FaultProxy,
  FaultProxyOptions,
  FaultProxyStats,
} from "./proxy.ts";
export type { FtvServer, ServeOptions } from "./server.ts";
export { ConnectionError, RemoteError } from "./connection.ts";
export { TransferError } from "./transfer.ts";
export type { TransferStats } from "./transfer.ts";
export { hashFile, hashFile as hash } from "./digest.ts";
export {
  encodeControl,
  encodeData,
  ERROR_CODE,
  FrameDecoderStream,
  PROTOCOL_VERSION,
  ProtocolError,
} from "./protocol.ts";
export type {
  ControlMessage,
  DataFrame,
  DirEntry,
  ErrorCode,
  FileEntry,
  Frame,
} from "./protocol.ts";
export { EXIT, main } from "./cli.ts";
export type { Io } from "./cli.ts";
export { Logger } from "./log.ts";
export type { LoggerOptions, LogLevel, LogSink } from "./log.ts";
export { VERSION } from "./version.ts";
export { ErrorSimulator } from "./faults.ts";
export type { ChunkFate, ErrorSimulatorOptions } from "./faults.ts";
export type { TrustMode } from "./trust.ts";

import { main } from "./cli.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
