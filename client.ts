/**
 * The ftv client: connects, says hello, and uploads (`send`), downloads
 * (`get`), lists, or does the seed's round trip (upload, then download the
 * server's chunked copy and verify it).
 *
 * @module
 */

import { chunkSizeRefusal } from "./engine/chunks.ts";
import { chunkSizeOf } from "./engine/chunk_reader.ts";
import { ChunkStore } from "./engine/chunk_store.ts";
import { proofFor } from "./security/auth.ts";
import type { CompressionMode } from "./engine/compression.ts";
import type { ErrorSimulator } from "./faults/simulator.ts";
import { FramedConnection } from "./net/connection.ts";
import type { TrustMode } from "./security/trust.ts";
import { Logger } from "./base/log.ts";
import { type DirEntry, type FileEntry, PROTOCOL_VERSION } from "./protocol.ts";
import { receiveChunks } from "./engine/receiver.ts";
import { sendChunks } from "./engine/sender.ts";
import type { TransferStats } from "./engine/transfer.ts";
import type { ProgressEvent } from "./cli/progress.ts";
import { RateLimiter } from "./net/rate_limit.ts";
import { type ReconnectOptions, withReconnect } from "./client/reconnect.ts";
import { AGENT } from "./base/version.ts";
import {
  AuthenticationError,
  ConnectionError,
  ERROR_CODE,
  ProtocolError,
  RemoteError,
} from "./base/errors.ts";
import { chunkCount } from "./engine/chunks.ts";
import { DEFAULT_CHUNK_SIZE } from "./engine/chunks.ts";

/** Options for {@linkcode FtvClient.connect}. */
export interface ConnectOptions {
  /** Server host. @default "localhost" */
  host?: string;
  /** Server port. @default 9999 */
  port?: number;
  /** Milliseconds to wait for the connection and for each reply. @default 30000 */
  timeoutMs?: number;
  /** Token for a server that asks for one (never sent: it answers a challenge). */
  token?: string;
  /** Speak TLS 1.3, trusting the server as this says (CA file, pin, or known_hosts). */
  tls?: TrustMode;
  /** Aborting closes the connection and stops any retry; the reason is thrown. */
  signal?: AbortSignal;
  /** Logger; its level decides what is printed. */
  log?: Logger;
}

/** Options shared by uploads and downloads. */
export interface TransferOptions {
  /** How chunks are compressed on the wire (per chunk; skipped where it does not pay). @default "auto" */
  compress?: CompressionMode;
  /** Bytes per second to stay under. */
  limitRate?: number;
  /** Told how many chunks the receiving side already held when the transfer started. */
  onReady?: (heldChunks: number) => void;
  /** Told how far the transfer is, after every chunk. */
  onProgress?: (event: ProgressEvent) => void;
}

/** Options for {@linkcode FtvClient.send}. */
export interface SendOptions extends TransferOptions {
  /** Loses and damages outgoing chunks, to see repair at work. */
  simulator?: ErrorSimulator;
  /** The file's digest if already known: a server holding it answers at once. */
  knownSha256?: string;
  /** Told the file's digest once it is computed. */
  onDigest?: (sha256: string) => void;
  /** Name to store the file under. @default the file's base name */
  as?: string;
  /** Repair rounds before giving up. @default 3 */
  maxRetries?: number;
}

/** Options for {@linkcode FtvClient.get}. */
export interface GetOptions extends TransferOptions {
  /** Where to write the file. @default the name, in the current folder */
  out?: string;
  /** Repair rounds before giving up. @default 3 */
  maxRetries?: number;
  /** Refuse to finalise unless the file has this SHA-256. */
  expectSha256?: string;
  /** Sync the file to disk before it takes its final name. @default true */
  fsync?: boolean;
}

/** What a finished transfer reports. */
export interface TransferResult extends TransferStats {
  /** The file's name on the server. */
  name: string;
  /** The local path read or written. */
  path: string;
  /** Wall-clock time of the transfer. */
  seconds: number;
  /** Connections used, counting reconnects. @default 1 */
  connections?: number;
}

/** Default repair rounds, as in the seed. */
export const DEFAULT_MAX_RETRIES = 3;

/** A connection to an ftv server. */
export class FtvClient implements Disposable {
  /** Where this client logs. */
  readonly log: Logger;
  /** Chunk size the server announced. */
  readonly chunkSize: number;
  #fc: FramedConnection;
  #forgetSignal: () => void;

  private constructor(
    fc: FramedConnection,
    chunkSize: number,
    log: Logger,
    forgetSignal: () => void,
  ) {
    this.#fc = fc;
    this.chunkSize = chunkSize;
    this.log = log;
    this.#forgetSignal = forgetSignal;
  }

  /**
   * Connects and exchanges hellos.
   *
   * @example
   * ```ts
   * import { FtvClient } from "./client.ts";
   * using client = await FtvClient.connect({ host: "127.0.0.1", port: 9999 });
   * console.log(await client.list());
   * ```
   */
  static async connect(options: ConnectOptions = {}): Promise<FtvClient> {
    const host = options.host ?? "localhost";
    const port = options.port ?? 9999;
    const timeoutMs = options.timeoutMs ?? 30_000;
    const log = options.log ?? new Logger("FileTransferClient");
    options.signal?.throwIfAborted();
    const conn = options.tls
      ? await (await import("./security/trust.ts")).connectTrusted(
        host,
        port,
        options.tls,
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
    options.signal?.addEventListener("abort", abort, { once: true });
    try {
      options.signal?.throwIfAborted();
      await fc.send({ type: "hello", version: PROTOCOL_VERSION, agent: AGENT });
      const hello = await fc.expect("hello");
      const chunkSize = hello.chunkSize ?? DEFAULT_CHUNK_SIZE;
      checkChunkSize(chunkSize);
      if (hello.challenge !== undefined) {
        await logIn(fc, hello.challenge, options.token);
      }
      log.info(
        `Connected to server at ${host}:${port}${options.tls ? " (TLS)" : ""}`,
      );
      return new FtvClient(
        fc,
        chunkSize,
        log,
        () => options.signal?.removeEventListener("abort", abort),
      );
    } catch (error) {
      options.signal?.removeEventListener("abort", abort);
      fc.close();
      throw error;
    }
  }

  /**
   * The framed connection, for pipelined requests (`tree.ts`).
   *
   * @internal
   */
  get connection(): FramedConnection {
    return this.#fc;
  }

  /** Uploads a file; resolves once the server has verified it. */
  async send(path: string, options: SendOptions = {}): Promise<TransferResult> {
    const started = performance.now();
    using file = await Deno.open(path, { read: true });
    const info = await file.stat();
    if (!info.isFile) throw new TypeError(`Cannot send ${path}: not a file`);
    const name = options.as ?? basename(path);
    const compression = options.compress ?? "auto";
    const chunkSize = await chunkSizeOf(
      file,
      info.size,
      compression,
      this.chunkSize,
    );
    await this.#fc.send({
      type: "put",
      name,
      size: info.size,
      chunkSize,
      mtimeMs: info.mtime?.getTime() ?? 0,
      maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
      ...(options.knownSha256 ? { sha256: options.knownSha256 } : {}),
      ...(info.mode === null ? {} : { mode: info.mode & 0o777 }),
      earlyNack: true,
    });
    this.log.info(
      `Uploading ${path} as ${name} (${info.size} bytes, ${
        chunkCount(info.size, chunkSize)
      } chunks)`,
    );
    const stats = await sendChunks(this.#fc, file, {
      compression,
      size: info.size,
      chunkSize,
      ...this.#pacing(options, name, info.size),
      ...(options.knownSha256 ? { knownSha256: options.knownSha256 } : {}),
      ...(options.simulator ? { simulator: options.simulator } : {}),
      ...(options.onDigest ? { onDigest: options.onDigest } : {}),
      log: this.log,
    });
    this.log.info(`Server verified ${name}: ${stats.sha256}`);
    return { ...stats, name, path, seconds: elapsed(started) };
  }

  /** Downloads a stored file, verifying every chunk and the whole file. */
  async get(name: string, options: GetOptions = {}): Promise<TransferResult> {
    const started = performance.now();
    await this.#fc.send({
      type: "get",
      name,
      compress: options.compress ?? "auto",
    });
    const offer = await this.#fc.expect("offer");
    checkChunkSize(offer.chunkSize, offer.size);
    const path = options.out ?? basename(name);
    const store = await ChunkStore.open(path, {
      name: offer.name,
      size: offer.size,
      chunkSize: offer.chunkSize,
      mtimeMs: offer.mtimeMs,
      sha256: offer.sha256,
    }, {
      fsync: options.fsync ?? true,
      attributes: { mode: offer.mode, mtimeMs: offer.mtimeMs },
    });
    try {
      this.log.info(`Original file checksum: ${offer.sha256}`);
      this.log.info(`Expected chunks: ${store.count}`);
      const stats = await receiveChunks(this.#fc, store, {
        ...this.#pacing(options, name, offer.size),
        transferId: offer.transferId,
        maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
        earlyNack: offer.earlyNack === true,
        ...(options.expectSha256 === undefined
          ? {}
          : { expectedSha256: options.expectSha256 }),
        log: this.log,
      });
      this.log.info(`File saved to ${path}`);
      return { ...stats, name, path, seconds: elapsed(started) };
    } finally {
      await store.suspend();
    }
  }

  /** The rate limit and callbacks a transfer of `name` hands to the chunk engine. */
  #pacing(options: TransferOptions, name: string, total: number) {
    const { onProgress } = options;
    return {
      ...(options.limitRate === undefined
        ? {}
        : { limiter: new RateLimiter(options.limitRate) }),
      ...(options.onReady === undefined ? {} : { onReady: options.onReady }),
      ...(onProgress === undefined ? {} : {
        onProgress: (bytes: number, retransmittedChunks: number) =>
          onProgress({ name, bytes, total, retransmittedChunks }),
      }),
    };
  }

  /** The server's stored files. */
  async list(): Promise<FileEntry[]> {
    return (await this.listTree()).files;
  }

  /** The server's stored files and folders, all or only `prefix` and what lies under it. */
  async listTree(
    prefix?: string,
  ): Promise<{ files: FileEntry[]; dirs: DirEntry[] }> {
    const files: FileEntry[] = [];
    const dirs: DirEntry[] = [];
    let offset: number | undefined = 0;
    while (offset !== undefined) {
      await this.#fc.send({
        type: "list",
        ...(prefix === undefined ? {} : { prefix }),
        ...(offset > 0 ? { offset } : {}),
      });
      const page = await this.#fc.expect("listing");
      files.push(...page.files);
      dirs.push(...(page.dirs ?? []));
      if (page.next !== undefined && page.next <= offset) {
        throw new ProtocolError(
          "Cannot list: the server's pages do not advance",
        );
      }
      offset = page.next;
    }
    return { files, dirs };
  }

  /** Closes the connection. */
  close(): void {
    this.#forgetSignal();
    this.#fc.close();
  }

  /** Closes the connection (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options for {@linkcode send}, {@linkcode get} and {@linkcode roundTrip}. */
export interface ClientOptions extends ConnectOptions {
  /** Repair rounds per connection, and reconnects in a row without progress. @default 3 */
  maxRetries?: number;
  /** First reconnect delay in milliseconds, doubling each time. @default 500 */
  retryDelayMs?: number;
}

/** The reconnect policy that `options` ask for. */
export function reconnectOptions(
  options: ClientOptions,
  log: Logger,
): ReconnectOptions {
  return {
    maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
    ...(options.retryDelayMs === undefined
      ? {}
      : { retryDelayMs: options.retryDelayMs }),
    ...(options.signal ? { signal: options.signal } : {}),
    log,
  };
}

function reconnecting<T extends TransferResult>(
  options: ClientOptions,
  run: (client: FtvClient, onReady: (held: number) => void) => Promise<T>,
): Promise<T> {
  const log = options.log ?? new Logger("FileTransferClient");
  return withReconnect(reconnectOptions(options, log), async (attempt) => {
    using client = await FtvClient.connect({ ...options, log });
    const result = await run(client, (held) => attempt.held(held));
    return { ...result, connections: attempt.number };
  });
}

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
    seconds: elapsed(started),
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
    seconds: elapsed(started),
  }));
}

/**
 * The seed's round trip: upload `path`, then download the server's chunked
 * copy (to `received_<name>` unless `out` is given) and verify it.
 */
export async function roundTrip(
  path: string,
  options: ClientOptions & SendOptions & GetOptions = {},
): Promise<TransferResult> {
  const started = performance.now();
  const log = options.log ?? new Logger("FileTransferClient");
  const uploaded = await send(path, { ...options, log });
  log.info(`Server checksum: ${uploaded.sha256}`);
  const received = await get(uploaded.name, {
    ...options,
    log,
    out: options.out ?? `received_${uploaded.name}`,
    expectSha256: options.expectSha256 ?? uploaded.sha256,
  });
  return {
    ...received,
    retransmittedChunks: uploaded.retransmittedChunks +
      received.retransmittedChunks,
    wireBytes: uploaded.wireBytes + received.wireBytes,
    connections: (uploaded.connections ?? 1) + (received.connections ?? 1),
    seconds: elapsed(started),
  };
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

function checkChunkSize(chunkSize: number, size = 0): void {
  const refused = chunkSizeRefusal(chunkSize, size);
  if (refused) {
    throw new ProtocolError(
      `Cannot use the server's chunks: ${refused.reason}`,
    );
  }
}

/** The last component of a path. */
export function basename(path: string): string {
  const trimmed = path.replace(/[/\\]+$/, "");
  return trimmed.slice(
    Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\")) + 1,
  );
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started) / 1000;
}
