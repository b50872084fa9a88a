/**
 * The ftv client: uploads (`send`), downloads (`get`) and the seed's round
 * trip (upload, then download the server's chunked copy and verify it),
 * each reconnecting and resuming when the connection drops; folders with
 * `sendTree` and `getTree`. The wing `client/` holds the connection
 * ({@linkcode FtvClient}, the one owner of what the client says), the
 * reconnect policy, the pipelined requests and the tree walks.
 *
 * @module
 */

import { secondsSince } from "./base/clock.ts";
import { COMPONENT, Logger } from "./base/log.ts";
import type {
  ClientOptions,
  GetOptions,
  SendOptions,
  TransferResult,
} from "./client/ftv_client.ts";
import { reconnecting } from "./client/reconnect.ts";
import { fitName } from "./protocol/names.ts";

export { DEFAULT_MAX_RETRIES, FtvClient } from "./client/ftv_client.ts";
export type {
  ClientOptions,
  ConnectOptions,
  GetOptions,
  SendOptions,
  ServerAddress,
  TransferOptions,
  TransferResult,
} from "./client/ftv_client.ts";
export { getTree } from "./client/get_tree.ts";
export { sendTree } from "./client/send_tree.ts";
export { walkTree } from "./client/walk.ts";
export type {
  TreeFile,
  TreeOptions,
  TreeResult,
} from "./client/tree_result.ts";
export type { TreeEntry, Walk, WalkOptions } from "./client/walk.ts";

/**
 * Uploads a file, reconnecting and resuming when the connection drops.
 *
 * @example
 * ```ts
 * import { send } from "./client.ts";
 * const result = await send("big.iso", { host: "127.0.0.1", port: 9999 });
 * console.log(result.sha256, result.resumedBytes);
 * ```
 */
export function send(
  path: string,
  options: ClientOptions & SendOptions = {},
): Promise<TransferResult> {
  const started = performance.now();
  let digest: string | undefined;
  return reconnecting(options, async (client, onReady) => ({
    ...await client.send(path, {
      ...options,
      onReady,
      onDigest: (sha256) => digest = sha256,
      ...(digest ? { knownSha256: digest } : {}),
    }),
    seconds: secondsSince(started),
  }));
}

/** Downloads a stored file, reconnecting and resuming when the connection drops. */
export function get(
  name: string,
  options: ClientOptions & GetOptions = {},
): Promise<TransferResult> {
  const started = performance.now();
  return reconnecting(options, async (client, onReady) => ({
    ...await client.get(name, { ...options, onReady }),
    seconds: secondsSince(started),
  }));
}

/**
 * The seed's round trip: upload `path`, then download the server's chunked
 * copy (to `received_<name>`, shortened to fit the file system's limits,
 * unless `out` is given) and verify it.
 */
export async function roundTrip(
  path: string,
  options: ClientOptions & SendOptions & GetOptions = {},
): Promise<TransferResult> {
  const started = performance.now();
  const log = options.log ?? new Logger(COMPONENT.client);
  const uploaded = await send(path, { ...options, log });
  log.info(`Server checksum: ${uploaded.sha256}`);
  const received = await get(uploaded.name, {
    ...options,
    log,
    out: options.out ?? fitName(`received_${uploaded.name}`),
    expectSha256: options.expectSha256 ?? uploaded.sha256,
  });
  return {
    ...received,
    retransmittedChunks: uploaded.retransmittedChunks +
      received.retransmittedChunks,
    wireBytes: uploaded.wireBytes + received.wireBytes,
    connections: (uploaded.connections ?? 1) + (received.connections ?? 1),
    seconds: secondsSince(started),
  };
}
