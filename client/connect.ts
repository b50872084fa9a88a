/**
 * Opening a session with an ftv server: the TCP (or TLS) connection within
 * a timeout, the hellos, and the token challenge when the server asks.
 *
 * @module
 */

import {
  AuthenticationError,
  ConnectionError,
  ERROR_CODE,
  ProtocolError,
  RemoteError,
  WrongPeerError,
} from "../base/errors.ts";
import type { Logger } from "../base/log.ts";
import { quotedBytes } from "../base/printable.ts";
import { AGENT } from "../base/version.ts";
import { chunkSizeRefusal, DEFAULT_CHUNK_SIZE } from "../engine/chunks.ts";
import { FramedConnection } from "../net/connection.ts";
import {
  type ControlOf,
  FEATURE,
  FRAME_PREFIX_BYTES,
  isTlsRecord,
  PROTOCOL_VERSION,
} from "../protocol.ts";
import { proofFor } from "../security/auth.ts";
import type { TrustMode } from "../security/trust.ts";

/** Where and how to open a session. */
export interface SessionTarget {
  host: string;
  port: number;
  /** Milliseconds for the connection and for each reply. */
  timeoutMs: number;
  /** Token for a server that asks for one. */
  token: string | undefined;
  /** Speak TLS 1.3, trusting the server as this says. */
  tls: TrustMode | undefined;
  /** Closes the connection when aborted. */
  signal: AbortSignal | undefined;
  log: Logger;
}

/** An open, logged-in session. */
export interface Session {
  /** The framed connection. */
  fc: FramedConnection;
  /** The chunk size the server announced. */
  chunkSize: number;
  /** The optional abilities the server announced (see `FEATURE`). */
  features: readonly string[];
  /** Stops listening to the abort signal. */
  forgetSignal: () => void;
}

/** Connects, exchanges hellos and logs in; closes the connection on failure. */
export async function openSession(target: SessionTarget): Promise<Session> {
  const { host, port, timeoutMs, log, signal } = target;
  signal?.throwIfAborted();
  const conn = target.tls
    ? await (await import("../security/trust.ts")).connectTrusted(
      host,
      port,
      target.tls,
      {
        timeoutMs,
        onNewHost: (_host, fingerprint, path) =>
          log.warn(
            `Trusting ${host}:${port} on first use (${fingerprint}); remembered in ${path}`,
          ),
      },
    )
    : await connectWithTimeout(host, port, timeoutMs);
  const fc = new FramedConnection(conn, { idleTimeoutMs: timeoutMs });
  const abort = () => fc.close();
  signal?.addEventListener("abort", abort, { once: true });
  const forgetSignal = () => signal?.removeEventListener("abort", abort);
  try {
    signal?.throwIfAborted();
    await fc.send({
      type: "hello",
      version: PROTOCOL_VERSION,
      agent: AGENT,
      features: [FEATURE.zeroChunks, FEATURE.fec],
    });
    const hello = await expectHello(fc, `${host}:${port}`);
    const chunkSize = hello.chunkSize ?? DEFAULT_CHUNK_SIZE;
    checkChunkSize(chunkSize);
    if (hello.challenge !== undefined) {
      await logIn(fc, hello.challenge, target.token);
    }
    log.info(
      `Connected to server at ${host}:${port}${target.tls ? " (TLS)" : ""}`,
    );
    return { fc, chunkSize, features: hello.features ?? [], forgetSignal };
  } catch (error) {
    forgetSignal();
    fc.close();
    throw error;
  }
}

/**
 * The server's `hello`. A first reply that is text (an HTTP or SSH server)
 * or a TLS record is a {@linkcode WrongPeerError}, never retried; a binary
 * one that is not a frame stays a `ProtocolError` (a damaged stream), since
 * no single flipped bit turns an ftv/1 header into text or a TLS record.
 */
async function expectHello(
  fc: FramedConnection,
  where: string,
): Promise<ControlOf<"hello">> {
  try {
    return await fc.expect("hello");
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    const greeting = fc.peekBuffered(64);
    const what = isTlsRecord(greeting)
      ? "it speaks TLS: use --tls"
      : isText(greeting.subarray(0, FRAME_PREFIX_BYTES))
      ? `it sent ${quotedBytes(greeting)}`
      : undefined;
    if (what === undefined) throw error;
    throw new WrongPeerError(
      `Cannot start a session: ${where} does not speak ftv/1 (${what})`,
      { cause: error },
    );
  }
}

/** Whether `bytes` are all printable ASCII, tabs and line ends: a text protocol's greeting. */
function isText(bytes: Uint8Array): boolean {
  return bytes.length === FRAME_PREFIX_BYTES &&
    bytes.every((byte) =>
      (byte >= 0x20 && byte < 0x7f) || byte === 9 || byte === 10 ||
      byte === 13
    );
}

/** Throws a `ProtocolError` when the server's chunks cannot carry a file of `size` bytes. */
export function checkChunkSize(chunkSize: number, size = 0): void {
  const refused = chunkSizeRefusal(chunkSize, size);
  if (refused) {
    throw new ProtocolError(
      `Cannot use the server's chunks: ${refused.reason}`,
    );
  }
}

async function logIn(
  fc: FramedConnection,
  challenge: string,
  token: string | undefined,
): Promise<void> {
  if (token === undefined) {
    throw new AuthenticationError(
      "Cannot log in: the server requires a token (--token or FTV_TOKEN)",
    );
  }
  await fc.send({ type: "auth", proof: proofFor(token, challenge) });
  try {
    await fc.expect("authorized");
  } catch (error) {
    if (
      error instanceof RemoteError && error.code === ERROR_CODE.unauthorized
    ) {
      throw new AuthenticationError(`${error.message}`, { cause: error });
    }
    throw error;
  }
}

async function connectWithTimeout(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<Deno.Conn> {
  const attempt = Deno.connect({ hostname: host, port });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new ConnectionError(
            `Cannot connect to ${host}:${port}: no answer within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([attempt, timeout]);
  } catch (error) {
    attempt.then((conn) => conn.close(), () => undefined);
    if (error instanceof ConnectionError) throw error;
    const reason = error instanceof Deno.errors.ConnectionRefused
      ? "connection refused (is the server running?)"
      : (error as Error).message;
    throw new ConnectionError(`Cannot connect to ${host}:${port}: ${reason}`, {
      cause: error,
    });
  } finally {
    clearTimeout(timer);
  }
}
