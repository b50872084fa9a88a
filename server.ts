/**
 * The ftv server: accepts connections, speaks ftv/1 with each in its own
 * session, stores uploads under its data folder and serves them back.
 * A misbehaving peer loses its own connection and nothing else. The wing
 * `server/` holds the sessions, the request handlers (uploads, downloads,
 * listings), the one admission check and the catalog of stored files.
 *
 * @module
 */

import { ERROR_CODE } from "./base/errors.ts";
import { DEFAULT_PORT } from "./protocol.ts";
import { COMPONENT, Logger } from "./base/log.ts";
import { chunkSizeRefusal, DEFAULT_CHUNK_SIZE } from "./engine/chunks.ts";
import type { ChunkFaults } from "./engine/transfer.ts";
import { ErrorSimulator } from "./faults/simulator.ts";
import { FramedConnection } from "./net/connection.ts";
import { AuthThrottle, isLoopback } from "./security/auth.ts";
import type { ServerContext } from "./server/context.ts";
import {
  openLocalStore,
  openS3,
  type ParityShape,
  type S3Options,
  type Store,
} from "./store.ts";

export type { S3Options } from "./store.ts";
import { runSession, type SessionSettings } from "./server/session.ts";
import { ConnectionTable, type Held } from "./server/connections.ts";
import { type Housekeeping, startHousekeeping } from "./server/housekeeping.ts";
import { type HttpFront, startHttp } from "./server/http/router.ts";
import { OpenUploads } from "./server/http/open_uploads.ts";

/** The parity a server keeps unless told otherwise: 16 + 2 (12.5 % more disk). */
export const DEFAULT_PARITY: ParityShape = { k: 16, m: 2 };

/** Options for {@linkcode serve}. */
export interface ServeOptions {
  /** Address to bind. @default "localhost" */
  host?: string;
  /** Port to bind; 0 picks a free one. @default 9999 */
  port?: number;
  /**
   * Folder for stored files; created when missing. With `s3`, it keeps
   * only the server's own files (TLS material). @default "./ftv-data"
   */
  dir?: string;
  /**
   * Keep files in an S3 bucket instead of `dir`: several servers on one
   * bucket share every file and every unfinished upload (any of them
   * continues any transfer). Parity and `maxTotalBytes` are for a folder;
   * the service keeps its own checksums and quotas.
   */
  s3?: S3Options;
  /** Bytes per chunk for files this server sends. @default 1048576 */
  chunkSize?: number;
  /**
   * Damage outgoing chunks like the seed did (loss, corruption, reordering):
   * `true` with the defaults (rate 0.1, random seed), or the rate and seed.
   * @default false
   */
  simulateErrors?: boolean | SimulateErrorsOptions;
  /** Sync received files to disk before they take their final name. @default true */
  fsync?: boolean;
  /** Milliseconds a connection may stay silent mid-request. @default 60000 */
  idleTimeoutMs?: number;
  /** Milliseconds a new connection has to say hello (and log in). @default 10000 */
  handshakeTimeoutMs?: number;
  /**
   * Connections served at once. When full, the oldest connection that has
   * not finished its hello gives way to a new one; only when every one has
   * is a newcomer refused with `busy`. @default 64
   */
  maxConnections?: number;
  /** Connections one address may hold, with the same rule. @default 16 */
  maxConnectionsPerAddress?: number;
  /** Part files of uploads abandoned this long are removed. @default 86400000 (a day) */
  partTtlMs?: number;
  /** Re-hash every stored file in the background at start, marking rotted ones damaged. @default false */
  verify?: boolean;
  /**
   * Reed-Solomon parity kept beside each stored file (under `.ftv/parity/`):
   * groups of `k` chunks with `m` parity shards, so up to `m` rotted
   * chunks per group are rebuilt. Costs `m / k` of the file's size on disk.
   * `false` keeps none. @default { k: 16, m: 2 } (12.5 %)
   */
  parity?: { k: number; m: number } | false;
  /**
   * Who may connect. `{ token }`: clients must prove they know the token
   * (HMAC challenge; it never crosses the wire). `"anyone"`: no token, even
   * on a non-loopback address. Unset: no token, and only a loopback `host`.
   */
  auth?: { token: string } | "anyone";
  /** Largest file accepted, in bytes. @default unlimited */
  maxFileSize?: number;
  /** Most bytes all stored files may take together. @default unlimited */
  maxTotalBytes?: number;
  /**
   * Serve TLS. `true` uses a CA and leaf certificate generated on first start
   * under `<dir>/.ftv/tls`; `{ certFile, keyFile }` uses your own.
   */
  tls?: boolean | { certFile: string; keyFile: string };
  /**
   * Also serve HTTP (HTTPS with `tls`) on this port, over the same store,
   * names, limits and token: downloads, `PUT`, tus and IETF-draft
   * resumable uploads. `host` defaults to the server's; `cors` is the one
   * origin browsers may call it from. @default off
   */
  http?: { port: number; host?: string; cors?: string };
  /** Aborting stops the server, as {@linkcode FtvServer.close} does. */
  signal?: AbortSignal;
  /** Logger; its level decides what is printed. */
  log?: Logger;
}

/** How a server simulating errors damages chunks. */
export interface SimulateErrorsOptions {
  /** Probability that a chunk is lost or corrupted. @default 0.1 */
  errorRate?: number;
  /** Seed for reproducible damage. @default random */
  seed?: number;
}

/** A running server. */
export interface FtvServer extends AsyncDisposable {
  /** The bound address (useful with port 0). */
  readonly addr: Deno.NetAddr;
  /** With generated TLS certificates: the CA's fingerprint clients may pin. */
  readonly caFingerprint: string | undefined;
  /** The HTTP front door's bound address, when `http` was given. */
  readonly httpAddr: Deno.NetAddr | undefined;
  /** Stops accepting, closes every connection, waits for sessions to end. */
  close(): Promise<void>;
  /**
   * Resolves when the server has stopped: listener closed, every session
   * ended, the store saved (as after {@linkcode FtvServer.close}).
   */
  readonly finished: Promise<void>;
}

/**
 * Starts a server.
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 * await using server = await serve({ host: "127.0.0.1", port: 0, dir: "./ftv-data" });
 * console.log(`listening on ${server.addr.port}`);
 * ```
 */
export async function serve(options: ServeOptions = {}): Promise<FtvServer> {
  const { chunkSize, host, token } = checkedOptions(options);
  const dir = options.dir ?? "./ftv-data";
  await Deno.mkdir(dir, { recursive: true });
  const log = options.log ?? new Logger(COMPONENT.server);
  const store = options.s3 ? await openS3(options.s3, log) : openLocalStore({
    dir,
    parity: options.parity === false
      ? undefined
      : options.parity ?? DEFAULT_PARITY,
    chunkSize,
  });
  let listening: Awaited<ReturnType<typeof listen>>;
  try {
    listening = await listen(
      host,
      options.port ?? DEFAULT_PORT,
      dir,
      options.tls,
    );
  } catch (error) {
    await store.close();
    throw error;
  }
  const { listener, caFingerprint, certificate } = listening;
  const simulate = options.simulateErrors === true
    ? {}
    : options.simulateErrors || undefined;
  const simulator = simulate
    ? new ErrorSimulator({ errorRate: 0.1, ...simulate, log })
    : undefined;
  const server = new Server(listener, {
    store,
    chunkSize,
    faults: simulator,
    idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
    maxConnections: options.maxConnections ?? 64,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress ?? 16,
    partTtlMs: options.partTtlMs ?? 86_400_000,
    verify: options.verify ?? false,
    token,
    limits: {
      maxFileSize: options.maxFileSize ?? Number.MAX_SAFE_INTEGER,
      maxTotalBytes: options.maxTotalBytes ?? Number.MAX_SAFE_INTEGER,
    },
    fsync: options.fsync ?? true,
    log,
    http: options.http
      ? {
        port: options.http.port,
        host: options.http.host ?? host,
        cors: options.http.cors,
        certificate,
      }
      : undefined,
  }, caFingerprint);
  if (options.signal) {
    const stop = () => server.close();
    options.signal.addEventListener("abort", stop, { once: true });
    server.finished.finally(() =>
      options.signal?.removeEventListener("abort", stop)
    );
  }
  if (server.httpAddr) {
    log.info(
      `Serving HTTP${
        options.tls ? "S" : ""
      } on ${server.httpAddr.hostname}:${server.httpAddr.port}`,
    );
  }
  if (options.s3) log.info(`Storing files in ${store.description}`);
  log.info(`Server started on ${host}:${server.addr.port}`);
  if (options.tls) log.info("Serving TLS");
  if (caFingerprint) log.info(`TLS CA fingerprint: ${caFingerprint}`);
  return server;
}

/** The chunk size, host and token `options` give, once checked. */
function checkedOptions(
  options: ServeOptions,
): { chunkSize: number; host: string; token: string | undefined } {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const badChunkSize = chunkSizeRefusal(chunkSize);
  if (badChunkSize) {
    throw new RangeError(`Cannot serve: ${badChunkSize.reason}`);
  }
  const host = options.host ?? "localhost";
  for (const bound of [host, options.http?.host ?? host]) {
    if (!isLoopback(bound) && options.auth === undefined) {
      throw new RangeError(
        `Cannot serve on ${bound} without a token: give auth: { token } or, to serve anyone who connects, auth: "anyone"`,
      );
    }
  }
  if (options.s3 && options.maxTotalBytes !== undefined) {
    throw new RangeError(
      "Cannot serve: maxTotalBytes counts a folder; an S3 store has the service's quota",
    );
  }
  const token = typeof options.auth === "object"
    ? options.auth.token
    : undefined;
  return { chunkSize, host, token };
}

async function listen(
  hostname: string,
  port: number,
  dir: string,
  tls: ServeOptions["tls"],
): Promise<
  {
    listener: Deno.Listener;
    caFingerprint: string | undefined;
    certificate?: { cert: string; key: string };
  }
> {
  if (!tls) {
    return {
      listener: Deno.listen({ hostname, port }),
      caFingerprint: undefined,
    };
  }
  if (tls === true) {
    // Loaded on demand: certificate code costs every plain start-up time.
    const { ensureServerCertificates } = await import("./security/tls.ts");
    const certificates = await ensureServerCertificates(dir);
    return {
      listener: Deno.listenTls({
        hostname,
        port,
        cert: certificates.certPem,
        key: certificates.keyPem,
      }),
      caFingerprint: certificates.caFingerprint,
      certificate: { cert: certificates.certPem, key: certificates.keyPem },
    };
  }
  const { loadCertificates } = await import("./security/tls.ts");
  const { certPem, keyPem } = await loadCertificates(tls.certFile, tls.keyFile);
  return {
    listener: Deno.listenTls({ hostname, port, cert: certPem, key: keyPem }),
    caFingerprint: undefined,
    certificate: { cert: certPem, key: keyPem },
  };
}

/** Runs a server until SIGINT or SIGTERM, then shuts it down cleanly. */
export async function serveUntilSignal(options: ServeOptions): Promise<void> {
  const server = await serve(options);
  const stop = () => {
    options.log?.info("Shutting down");
    server.close();
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  try {
    await server.finished;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
}

interface ServerSettings {
  store: Store;
  chunkSize: number;
  faults: ChunkFaults | undefined;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerAddress: number;
  partTtlMs: number;
  verify: boolean;
  token: string | undefined;
  limits: ServerContext["limits"];
  fsync: boolean;
  log: Logger;
  http:
    | {
      port: number;
      host: string;
      cors: string | undefined;
      certificate: { cert: string; key: string } | undefined;
    }
    | undefined;
}

/** The accept loop, the open connections, and what their sessions share. */
class Server implements FtvServer {
  readonly addr: Deno.NetAddr;
  readonly caFingerprint: string | undefined;
  readonly httpAddr: Deno.NetAddr | undefined;
  readonly finished: Promise<void>;
  #accepting: Promise<void>;
  #closed: Promise<void> | undefined;
  #listener: Deno.Listener;
  #http: HttpFront | undefined;
  #settings: ServerSettings;
  #context: ServerContext;
  #session: SessionSettings;
  #connections: ConnectionTable<HeldConnection>;
  #housekeeping: Housekeeping;
  #sessions = new Set<Promise<void>>();
  #stopping = new AbortController();

  constructor(
    listener: Deno.Listener,
    settings: ServerSettings,
    caFingerprint: string | undefined,
  ) {
    this.#listener = listener;
    this.#settings = settings;
    let transferId = 1;
    this.#context = {
      store: settings.store,
      chunkSize: settings.chunkSize,
      faults: settings.faults,
      limits: settings.limits,
      fsync: settings.fsync,
      log: settings.log,
      busyNames: new Set(),
      nextTransferId: () => transferId++,
    };
    const throttle = new AuthThrottle();
    this.#session = {
      idleTimeoutMs: settings.idleTimeoutMs,
      token: settings.token,
      throttle,
      stopping: this.#stopping.signal,
      closing: () => this.#closed !== undefined,
    };
    this.#connections = new ConnectionTable(
      settings.maxConnections,
      settings.maxConnectionsPerAddress,
    );
    this.#housekeeping = startHousekeeping(
      settings.store,
      {
        partTtlMs: settings.partTtlMs,
        verify: settings.verify,
        log: settings.log,
      },
    );
    this.caFingerprint = caFingerprint;
    this.addr = listener.addr as Deno.NetAddr;
    this.#http = settings.http && startHttp(this.#context, {
      token: settings.token,
      throttle,
      cors: settings.http.cors,
      idleTimeoutMs: settings.idleTimeoutMs,
      partTtlMs: settings.partTtlMs,
      stopping: this.#stopping.signal,
      uploads: new OpenUploads(this.#context, settings.idleTimeoutMs),
    }, {
      host: settings.http.host,
      port: settings.http.port,
      ...(settings.http.certificate ? { tls: settings.http.certificate } : {}),
    });
    this.httpAddr = this.#http?.addr;
    this.#accepting = this.#acceptLoop();
    // Stopped means stopped: sessions ended and the store saved, whether
    // close() was called or the listener failed.
    this.finished = this.#accepting.then(
      () => this.close(),
      async (error) => {
        await this.close();
        throw error;
      },
    );
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const session = this.#serve(conn);
        this.#sessions.add(session);
        session.finally(() => this.#sessions.delete(session));
      }
    } catch (error) {
      if (this.#closed === undefined) throw error;
    }
  }

  close(): Promise<void> {
    this.#closed ??= this.#shutDown();
    return this.#closed;
  }

  async #shutDown(): Promise<void> {
    this.#stopping.abort();
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const held of this.#connections.connections()) held.close();
    await this.#accepting.catch(() => undefined);
    await Promise.all([...this.#sessions, this.#http?.close()]);
    await this.#housekeeping.stop();
    await this.#settings.store.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Admits a connection (another still in its handshake may give way, see
   * `server/connections.ts`), or refuses it with `busy`, and runs its session.
   */
  async #serve(conn: Deno.Conn): Promise<void> {
    const { log } = this.#settings;
    const fc = new FramedConnection(conn, {
      idleTimeoutMs: this.#settings.handshakeTimeoutMs,
    });
    const held: HeldConnection = {
      fc,
      address: (conn.remoteAddr as Deno.NetAddr).hostname,
      close: () => fc.close(),
    };
    const admitted = this.#connections.admit(held);
    if (!admitted.ok) {
      log.warn(`Refused connection from ${fc.peer}: ${admitted.reason}`);
      await fc.sendError(ERROR_CODE.busy, "Cannot serve: too many connections");
      fc.close();
      return;
    }
    if (admitted.evicted) {
      log.warn(
        `Dropped connection from ${admitted.evicted.fc.peer}: it had not said hello, and ${fc.peer} was waiting`,
      );
    }
    try {
      await runSession(this.#context, fc, {
        ...this.#session,
        established: () => this.#connections.established(held),
      });
    } finally {
      this.#connections.remove(held);
    }
  }
}

/** A connection in the table: its framed connection and address. */
interface HeldConnection extends Held {
  readonly fc: FramedConnection;
}
