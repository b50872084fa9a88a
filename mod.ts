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
export {
  EagerDownloads,
  EagerUploads,
  FolderRequests,
} from "./client/pipelined.ts";
export type {
  EagerGetReply,
  EagerPutReply,
  FolderReply,
  PipelinedOptions,
  SmallFile,
} from "./client/pipelined.ts";
export { RateLimiter } from "./net/rate_limit.ts";
export type {
  ClientOptions,
  ConnectOptions,
  GetOptions,
  SendOptions,
  ServerAddress,
  TransferOptions,
  TransferResult,
} from "./client.ts";
export { getTree, sendTree, walkTree } from "./client.ts";
export type { CompressionMode } from "./engine/compression.ts";
export type { FecMode } from "./engine/fec.ts";
export type { GroupShape } from "./engine/parity/shape.ts";
export type {
  TreeEntry,
  TreeFile,
  TreeOptions,
  TreeResult,
  Walk,
  WalkOptions,
} from "./client.ts";
export { serve } from "./server.ts";
export { startProxy } from "./faults/proxy.ts";
export type {
  FaultProxy,
  FaultProxyOptions,
  FaultProxyStats,
} from "./faults/proxy.ts";
export type {
  FtvServer,
  S3Options,
  ServeOptions,
  SimulateErrorsOptions,
} from "./server.ts";
export { hashFile, hashFile as hash } from "./engine/digest.ts";
export {
  COMPRESSION_MODES,
  encodeControl,
  encodeData,
  FrameDecoderStream,
  PROTOCOL_VERSION,
} from "./protocol.ts";
export type {
  ControlMessage,
  ControlOf,
  ControlType,
  DataFrame,
  DirEntry,
  FileEntry,
  Frame,
  GetMessage,
  PutFields,
  PutMessage,
} from "./protocol.ts";
export { main } from "./cli/main.ts";
export type { Io } from "./base/io.ts";
export { Logger } from "./base/log.ts";
export type { LoggerOptions, LogLevel, LogSink } from "./base/log.ts";
export { VERSION } from "./base/version.ts";
export { ErrorSimulator } from "./faults/simulator.ts";
export type { ErrorSimulatorOptions } from "./faults/simulator.ts";
export type { TrustMode } from "./security/trust.ts";
export {
  AuthenticationError,
  ConnectionError,
  ERROR_CODE,
  type ErrorCode,
  EXIT,
  exitCodeOf,
  InterruptedError,
  type Outcome,
  ProtocolError,
  type Refusal,
  RemoteError,
  TransferError,
  TrustError,
  type TrustErrorCode,
  WrongPeerError,
} from "./base/errors.ts";
export type {
  ChunkFate,
  ChunkFaults,
  ProgressEvent,
  TransferStats,
} from "./engine/transfer.ts";

import { main } from "./cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
