/**
 * One ftv/1 connection on the server: the hello (and the token challenge
 * when the server has a token), then requests until the peer leaves. A peer
 * that breaks the protocol loses its own connection and nothing else.
 *
 * @module
 */

import {
  ConnectionError,
  ERROR_CODE,
  errorCodeOf,
  ProtocolError,
  RemoteError,
} from "../base/errors.ts";
import { delay } from "../base/clock.ts";
import { AGENT } from "../base/version.ts";
import type { FramedConnection } from "../net/connection.ts";
import { FEATURE, PROTOCOL_VERSION } from "../protocol.ts";
import {
  type AuthThrottle,
  newChallenge,
  proofMatches,
} from "../security/auth.ts";
import type { ServerContext, TreeTally } from "./context.ts";
import { sendDownload } from "./downloads.ts";
import { answerList } from "./listing.ts";
import { makeFolder, receiveEagerUpload, receiveUpload } from "./uploads.ts";

/** Replies to pipelined requests held back at most, to write them together. */
const MAX_QUEUED_REPLIES = 32;
/** Bytes of replies (eager gets' data included) held back at most. */
const MAX_QUEUED_BYTES = 256 * 1024;

/** What a session needs beyond the request handlers' context. */
export interface SessionSettings {
  /** Milliseconds a connection may stay silent mid-request. */
  idleTimeoutMs: number;
  /** Clients must prove they know this token. */
  token: string | undefined;
  /** Slows down addresses that failed to log in. */
  throttle: AuthThrottle;
  /** Aborted when the server stops. */
  stopping: AbortSignal;
  /** Whether the server is closing (errors are then expected, not warned of). */
  closing(): boolean;
  /** Told once the peer has said hello (and logged in): it no longer gives way to newcomers. */
  established?: () => void;
}

/** Serves one connection until the peer leaves or breaks the protocol. */
export async function runSession(
  ctx: ServerContext,
  fc: FramedConnection,
  settings: SessionSettings,
): Promise<void> {
  const { log } = ctx;
  const peer = fc.peer;
  log.info(`Connection established with ${peer}`);
  const tree: TreeTally = { files: 0, bytes: 0, dirs: 0 };
  try {
    const features = await handshake(fc, ctx.chunkSize, settings);
    if (features === undefined) {
      log.debug(`Connection with ${peer} closed before hello`);
      return;
    }
    settings.established?.();
    fc.idleTimeoutMs = settings.idleTimeoutMs;
    await serveRequests(
      { ...ctx, zeroChunks: features.includes(FEATURE.zeroChunks) },
      fc,
      tree,
    );
    log.info(`Connection with ${peer} closed`);
  } catch (error) {
    if (!settings.closing()) {
      log.warn(`Closing connection with ${peer}: ${(error as Error).message}`);
    }
    if (!(error instanceof ConnectionError)) {
      await fc.sendError(errorCodeOf(error), (error as Error).message);
    }
  } finally {
    fc.close();
    if (tree.files > 0 || tree.dirs > 0) {
      log.info(
        `Stored ${tree.files} small file(s) (${tree.bytes} bytes) and ${tree.dirs} folder(s) from ${peer}`,
      );
    }
    await ctx.store.flush().catch((error) =>
      log.warn(`Cannot save the digest cache: ${error.message}`)
    );
  }
}

/** Reads requests and answers each, until the peer closes cleanly. */
async function serveRequests(
  ctx: ServerContext,
  fc: FramedConnection,
  tree: TreeTally,
): Promise<void> {
  for (;;) {
    // Replies to pipelined requests go out together, once the input runs dry.
    if (
      fc.queued >= MAX_QUEUED_REPLIES || fc.queuedBytes >= MAX_QUEUED_BYTES ||
      !fc.hasBufferedFrame
    ) {
      await fc.flush();
    }
    const frame = await fc.next();
    if (frame === null) return;
    if (frame.kind !== "control") {
      throw new ProtocolError("Cannot accept a data frame outside a transfer");
    }
    const request = frame.message;
    switch (request.type) {
      case "put":
        if (request.eager) await receiveEagerUpload(ctx, fc, request, tree);
        else if (await receiveUpload(ctx, fc, request) === "ended") {
          return await fc.drainAndClose();
        }
        break;
      case "mkdir":
        await makeFolder(ctx, fc, request, tree);
        break;
      case "get":
        await sendDownload(ctx, fc, request);
        break;
      case "list":
        await answerList(ctx, fc, request);
        break;
      default:
        throw new ProtocolError(
          `Cannot serve request: unexpected "${request.type}" message`,
        );
    }
  }
}

/**
 * Hello, then the token challenge when one is set: the peer's features, or
 * `undefined` when it left first.
 */
async function handshake(
  fc: FramedConnection,
  chunkSize: number,
  settings: SessionSettings,
): Promise<readonly string[] | undefined> {
  const address = (fc.conn.remoteAddr as Deno.NetAddr).hostname;
  const pause = settings.throttle.delayFor(address);
  if (pause > 0) await delay(pause, settings.stopping);
  const first = await fc.next();
  if (first === null) return undefined;
  if (first.kind !== "control" || first.message.type !== "hello") {
    throw new ProtocolError('Cannot start a session: expected "hello"');
  }
  const hello = first.message;
  if (hello.version !== PROTOCOL_VERSION) {
    throw new RemoteError(
      ERROR_CODE.unsupportedVersion,
      `Cannot talk to ${
        JSON.stringify(hello.agent)
      }: protocol version ${hello.version} is not ${PROTOCOL_VERSION}`,
    );
  }
  const { token } = settings;
  const challenge = token ? newChallenge() : undefined;
  await fc.send({
    type: "hello",
    version: PROTOCOL_VERSION,
    agent: AGENT,
    chunkSize,
    features: [FEATURE.zeroChunks, FEATURE.fec],
    ...(challenge ? { challenge } : {}),
  });
  const features = hello.features ?? [];
  if (!token || !challenge) return features;
  const auth = await fc.expect("auth");
  if (!proofMatches(token, challenge, auth.proof)) {
    settings.throttle.fail(address);
    throw new RemoteError(
      ERROR_CODE.unauthorized,
      "Cannot log in: wrong token",
    );
  }
  settings.throttle.succeed(address);
  await fc.send({ type: "authorized" });
  return features;
}
