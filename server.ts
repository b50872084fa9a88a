/**
 * The ftv server: accepts connections, speaks ftv/1 with each in its own
 * session, stores uploads under its data folder and serves them back.
 * A misbehaving peer loses its own connection and nothing else.
 *
 * @module
 */

import { chunkSizeRefusal } from "./engine/chunks.ts";
import { chunkSizeOf } from "./engine/chunk_reader.ts";
import {
  AuthThrottle,
  isLoopback,
  newChallenge,
  proofMatches,
} from "./security/auth.ts";
import { Catalog } from "./server/catalog.ts";
import {
  ChunkCompressor,
  COMPRESSION_MODES,
  type CompressionMode,
} from "./engine/compression.ts";
import { ChunkStore, removeIfPresent } from "./engine/chunk_store.ts";
import { FramedConnection } from "./net/connection.ts";
import { ErrorSimulator } from "./faults/simulator.ts";
import { Logger } from "./base/log.ts";
import { PART_SUFFIX, pathProblem, STATE_SUFFIX } from "./protocol/names.ts";
import {
  type ControlOf,
  DATA_FRAME_OVERHEAD,
  encodeData,
  type FileEntry,
  LISTING_PAGE_ENTRIES,
  PROTOCOL_VERSION,
} from "./protocol.ts";
import { receiveChunks, receiveEager } from "./engine/receiver.ts";
import { sendChunks } from "./engine/sender.ts";
import { AGENT } from "./base/version.ts";
import {
  ConnectionError,
  ERROR_CODE,
  errorCodeOf,
  ProtocolError,
  RemoteError,
  TransferError,
} from "./base/errors.ts";
import { chunkCount } from "./engine/chunks.ts";
import { DEFAULT_CHUNK_SIZE } from "./engine/chunks.ts";

/** Most repair rounds the server grants one upload. */
export const MAX_SERVER_ROUNDS = 100;
/** Replies to pipelined requests held back at most, to write them together. */
const MAX_QUEUED_REPLIES = 32;
/** Bytes of replies (eager gets' data included) held back at most. */
const MAX_QUEUED_BYTES = 256 * 1024;

/** Options for {@linkcode serve}. */
export interface ServeOptions {
  /** Address to bind. @default "localhost" */
  host?: string;
  /** Port to bind; 0 picks a free one. @default 9999 */
  port?: number;
  /** Folder for stored files; created when missing. @default "./ftv-data" */
  dir?: string;
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
  /** Connections served at once; more are refused with `busy`. @default 64 */
  maxConnections?: number;
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
  /** Stops accepting, closes every connection, waits for sessions to end. */
  close(): Promise<void>;
  /** Resolves when the server has stopped. */
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
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const badChunkSize = chunkSizeRefusal(chunkSize);
  if (badChunkSize) {
    throw new RangeError(`Cannot serve: ${badChunkSize.reason}`);
  }
  const host = options.host ?? "localhost";
  const token = typeof options.auth === "object"
    ? options.auth.token
    : undefined;
  if (!isLoopback(host) && options.auth === undefined) {
    throw new RangeError(
      `Cannot serve on ${host} without a token: set --token or FTV_TOKEN, or pass --no-auth to serve anyone who connects`,
    );
  }
  const dir = options.dir ?? "./ftv-data";
  await Deno.mkdir(dir, { recursive: true });
  const log = options.log ?? new Logger("FileTransferServer");
  const { listener, caFingerprint } = await listen(
    host,
    options.port ?? 9999,
    dir,
    options.tls,
  );
  const simulate = options.simulateErrors === true
    ? {}
    : options.simulateErrors || undefined;
  const simulator = simulate
    ? new ErrorSimulator({ errorRate: 0.1, ...simulate, log })
    : undefined;
  const server = new Server(listener, {
    catalog: new Catalog(dir),
    chunkSize,
    simulator,
    idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 10_000,
    maxConnections: options.maxConnections ?? 64,
    token,
    maxFileSize: options.maxFileSize ?? Number.MAX_SAFE_INTEGER,
    maxTotalBytes: options.maxTotalBytes ?? Number.MAX_SAFE_INTEGER,
    fsync: options.fsync ?? true,
    log,
  }, caFingerprint);
  if (options.signal) {
    const stop = () => server.close();
    options.signal.addEventListener("abort", stop, { once: true });
    server.finished.finally(() =>
      options.signal?.removeEventListener("abort", stop)
    );
  }
  log.info(`Server started on ${host}:${server.addr.port}`);
  if (options.tls) log.info("Serving TLS");
  if (caFingerprint) log.info(`TLS CA fingerprint: ${caFingerprint}`);
  return server;
}

async function listen(
  hostname: string,
  port: number,
  dir: string,
  tls: ServeOptions["tls"],
): Promise<{ listener: Deno.Listener; caFingerprint: string | undefined }> {
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
    };
  }
  const { loadCertificates } = await import("./security/tls.ts");
  const { certPem, keyPem } = await loadCertificates(tls.certFile, tls.keyFile);
  return {
    listener: Deno.listenTls({ hostname, port, cert: certPem, key: keyPem }),
    caFingerprint: undefined,
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
  catalog: Catalog;
  chunkSize: number;
  simulator: ErrorSimulator | undefined;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  maxConnections: number;
  token: string | undefined;
  maxFileSize: number;
  maxTotalBytes: number;
  fsync: boolean;
  log: Logger;
}

class Server implements FtvServer {
  readonly addr: Deno.NetAddr;
  readonly caFingerprint: string | undefined;
  readonly finished: Promise<void>;
  #listener: Deno.Listener;
  #settings: ServerSettings;
  #connections = new Set<FramedConnection>();
  #sessions = new Set<Promise<void>>();
  #busyNames = new Set<string>();
  #nextTransferId = 1;
  #closing = false;
  #throttle = new AuthThrottle();
  #stopping = new AbortController();

  constructor(
    listener: Deno.Listener,
    settings: ServerSettings,
    caFingerprint: string | undefined,
  ) {
    this.#listener = listener;
    this.#settings = settings;
    this.caFingerprint = caFingerprint;
    this.addr = listener.addr as Deno.NetAddr;
    this.finished = this.#acceptLoop();
  }

  async #acceptLoop(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const session = this.#session(conn);
        this.#sessions.add(session);
        session.finally(() => this.#sessions.delete(session));
      }
    } catch (error) {
      if (!this.#closing) throw error;
    }
  }

  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#stopping.abort();
      try {
        this.#listener.close();
      } catch {
        // Already closed.
      }
      for (const fc of this.#connections) fc.close();
    }
    await this.finished;
    await Promise.all([...this.#sessions]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #session(conn: Deno.Conn): Promise<void> {
    const { log } = this.#settings;
    const fc = new FramedConnection(conn, {
      idleTimeoutMs: this.#settings.handshakeTimeoutMs,
    });
    const peer = fc.peer;
    if (this.#connections.size >= this.#settings.maxConnections) {
      log.warn(
        `Refused connection from ${peer}: ${this.#settings.maxConnections} connections already open`,
      );
      await fc.sendError(ERROR_CODE.busy, "Cannot serve: too many connections");
      fc.close();
      return;
    }
    this.#connections.add(fc);
    log.info(`Connection established with ${peer}`);
    const tree: TreeTally = { files: 0, bytes: 0, dirs: 0 };
    try {
      if (!(await this.#handshake(fc))) {
        log.debug(`Connection with ${peer} closed before hello`);
        return;
      }
      fc.idleTimeoutMs = this.#settings.idleTimeoutMs;
      for (;;) {
        // Replies to pipelined requests go out together, once the input runs dry.
        if (
          fc.queued >= MAX_QUEUED_REPLIES ||
          fc.queuedBytes >= MAX_QUEUED_BYTES || !fc.hasBufferedFrame
        ) {
          await fc.flush();
        }
        const frame = await fc.next();
        if (frame === null) break;
        if (frame.kind !== "control") {
          throw new ProtocolError(
            "Cannot accept a data frame outside a transfer",
          );
        }
        const request = frame.message;
        switch (request.type) {
          case "put":
            if (request.eager) await this.#receiveEager(fc, request, tree);
            else await this.#receive(fc, request);
            break;
          case "mkdir":
            await this.#mkdir(fc, request, tree);
            break;
          case "get":
            await this.#send(fc, request);
            break;
          case "list":
            await this.#list(fc, request);
            break;
          default:
            throw new ProtocolError(
              `Cannot serve request: unexpected "${request.type}" message`,
            );
        }
      }
      log.info(`Connection with ${peer} closed`);
    } catch (error) {
      if (!this.#closing) {
        log.warn(
          `Closing connection with ${peer}: ${(error as Error).message}`,
        );
      }
      if (!(error instanceof ConnectionError)) {
        await fc.sendError(errorCodeOf(error), (error as Error).message);
      }
    } finally {
      this.#connections.delete(fc);
      fc.close();
      if (tree.files > 0 || tree.dirs > 0) {
        log.info(
          `Stored ${tree.files} small file(s) (${tree.bytes} bytes) and ${tree.dirs} folder(s) from ${peer}`,
        );
      }
      await this.#settings.catalog.flush().catch((error) =>
        log.warn(`Cannot save the digest cache: ${error.message}`)
      );
    }
  }

  /** Hello, then the token challenge when one is set; false when the peer left first. */
  async #handshake(fc: FramedConnection): Promise<boolean> {
    const address = (fc.conn.remoteAddr as Deno.NetAddr).hostname;
    const pause = this.#throttle.delayFor(address);
    if (pause > 0) await abortableDelay(pause, this.#stopping.signal);
    const first = await fc.next();
    if (first === null) return false;
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
    const { token } = this.#settings;
    const challenge = token ? newChallenge() : undefined;
    await fc.send({
      type: "hello",
      version: PROTOCOL_VERSION,
      agent: AGENT,
      chunkSize: this.#settings.chunkSize,
      ...(challenge ? { challenge } : {}),
    });
    if (!token || !challenge) return true;
    const auth = await fc.expect("auth");
    if (!proofMatches(token, challenge, auth.proof)) {
      this.#throttle.fail(address);
      throw new RemoteError(
        ERROR_CODE.unauthorized,
        "Cannot log in: wrong token",
      );
    }
    this.#throttle.succeed(address);
    await fc.send({ type: "authorized" });
    return true;
  }

  /** Refuses a request with an error frame; the session goes on. */
  async #refuse(
    fc: FramedConnection,
    code: RemoteError["code"],
    message: string,
  ): Promise<void> {
    // A missing name is an ordinary answer (a client looking for a folder
    // asks for a file first); anything else deserves a warning.
    const level = code === ERROR_CODE.notFound ? "INFO" : "WARNING";
    this.#settings.log.log(
      level,
      `Refused request from ${fc.peer}: ${message}`,
    );
    await fc.send({ type: "error", code, message });
  }

  async #receive(fc: FramedConnection, put: ControlOf<"put">): Promise<void> {
    const { catalog, log } = this.#settings;
    const problem = pathProblem(put.name) ??
      await catalog.linkProblem(put.name);
    if (problem) {
      return this.#refuse(
        fc,
        ERROR_CODE.badName,
        `Cannot store file: ${problem}`,
      );
    }
    const sizeProblem = await this.#sizeProblem(put);
    if (sizeProblem) {
      return this.#refuse(
        fc,
        ERROR_CODE.tooLarge,
        `Cannot store ${JSON.stringify(put.name)}: ${sizeProblem}`,
      );
    }
    if (this.#busyNames.has(put.name)) {
      return this.#refuse(
        fc,
        ERROR_CODE.busy,
        `Cannot store ${
          JSON.stringify(put.name)
        }: another upload of it is in progress`,
      );
    }
    if (put.sha256 !== undefined && await this.#holds(put)) {
      log.info(`${put.name} is already stored with that digest`);
      await fc.send({
        type: "verified",
        transferId: 0,
        sha256: put.sha256,
        bytes: put.size,
        held: true,
      });
      return;
    }
    const parents = catalog.makeParents(put.name);
    if (parents) {
      return this.#refuse(
        fc,
        ERROR_CODE.badName,
        `Cannot store file: ${parents}`,
      );
    }
    this.#busyNames.add(put.name);
    try {
      const store = await ChunkStore.open(catalog.pathOf(put.name), {
        name: put.name,
        size: put.size,
        chunkSize: put.chunkSize,
        mtimeMs: put.mtimeMs,
      }, {
        fsync: this.#settings.fsync,
        attributes: { mode: put.mode, mtimeMs: put.mtimeMs },
      });
      const transferId = this.#nextTransferId++;
      try {
        log.info(
          `Receiving ${put.name} (${put.size} bytes in ${store.count} chunks${
            store.resumedChunks ? `, ${store.resumedChunks} already held` : ""
          })`,
        );
        const stats = await receiveChunks(fc, store, {
          transferId,
          maxRetries: Math.min(put.maxRetries, MAX_SERVER_ROUNDS),
          earlyNack: put.earlyNack === true,
          log,
        });
        await catalog.record(put.name, stats.sha256);
        log.info(`File received and saved as ${put.name}`);
        log.info(`Calculated checksum: ${stats.sha256}`);
      } finally {
        await store.suspend();
      }
    } catch (error) {
      if (!(error instanceof TransferError)) throw error;
      log.error(error.message);
    } finally {
      this.#busyNames.delete(put.name);
    }
  }

  /**
   * An eager put: a file of at most one chunk whose data and `done` follow
   * without waiting for `ready`, so a tree's small files stream back to back
   * over one connection. Received whole, checked, then stored in one go
   * ({@linkcode Catalog.storeWhole}); answered `verified`, or `nack` round 0
   * when the bytes were damaged (the client sends the file again the normal
   * way), or `error`. One DEBUG line per file; the session logs a summary.
   */
  async #receiveEager(
    fc: FramedConnection,
    put: ControlOf<"put">,
    tree: TreeTally,
  ): Promise<void> {
    const { catalog, log } = this.#settings;
    const { transferId, sha256 } = put;
    if (
      transferId === undefined || sha256 === undefined ||
      chunkSizeRefusal(put.chunkSize) || put.size > put.chunkSize
    ) {
      throw new ProtocolError(
        'Cannot accept an eager "put": it needs a transferId, a sha256 and at most one chunk',
      );
    }
    const body = await receiveEager(fc, { ...put, transferId, sha256 });
    const refuse = (code: RemoteError["code"], problem: string) =>
      this.#refuse(
        fc,
        code,
        `Cannot store ${JSON.stringify(put.name)}: ${problem}`,
      );
    const retryLater = () =>
      fc.queue({ type: "nack", transferId, seqs: [], round: 0 });
    const syntax = pathProblem(put.name);
    if (syntax) return refuse(ERROR_CODE.badName, syntax);
    const sizeProblem = await this.#sizeProblem(put);
    if (sizeProblem) return refuse(ERROR_CODE.tooLarge, sizeProblem);
    if (this.#busyNames.has(put.name)) {
      return refuse(ERROR_CODE.busy, "another upload of it is in progress");
    }
    let found = catalog.inspect(put.name);
    if (found.kind === "refused") {
      return refuse(ERROR_CODE.badName, found.problem);
    }
    if (found.stored?.size === put.size && await this.#holds(put)) {
      log.debug(`${put.name} is already stored with that digest`);
      fc.queue({
        type: "verified",
        transferId,
        sha256,
        bytes: put.size,
        held: true,
      });
      return;
    }
    if (!body.ok) {
      log.warn(`Eager transfer of ${put.name} failed: ${body.reason}`);
      return retryLater();
    }
    if (found.leftovers) {
      const problem = await catalog.linkProblem(put.name);
      if (problem) return refuse(ERROR_CODE.badName, problem);
      await removeIfPresent(catalog.pathOf(put.name) + PART_SUFFIX);
      await removeIfPresent(catalog.pathOf(put.name) + STATE_SUFFIX);
      found = catalog.inspect(put.name);
      if (found.kind === "refused") {
        return refuse(ERROR_CODE.badName, found.problem);
      }
    }
    const problem = catalog.storeWhole(put.name, body.bytes, sha256, {
      mode: put.mode,
      mtimeMs: put.mtimeMs,
      fsync: this.#settings.fsync,
      parentsExist: found.parentsExist,
    });
    if (problem === "busy") return retryLater();
    if (problem) return refuse(ERROR_CODE.badName, problem);
    tree.files++;
    tree.bytes += put.size;
    log.debug(`Stored ${put.name} (${put.size} bytes, SHA-256 ${sha256})`);
    fc.queue({ type: "verified", transferId, sha256, bytes: put.size });
  }

  /** Creates a folder with its mode and mtime; answered like an eager put. */
  #mkdir(
    fc: FramedConnection,
    request: ControlOf<"mkdir">,
    tree: TreeTally,
  ): Promise<void> {
    const problem = pathProblem(request.name) ??
      this.#settings.catalog.makeFolder(request.name, request);
    if (problem) {
      return this.#refuse(
        fc,
        ERROR_CODE.badName,
        `Cannot make folder ${JSON.stringify(request.name)}: ${problem}`,
      );
    }
    tree.dirs++;
    fc.queue({
      type: "verified",
      transferId: request.transferId,
      sha256: "",
      bytes: 0,
    });
    return Promise.resolve();
  }

  /** Lists stored files (and folders, when there are any), all or under a prefix. */
  async #list(fc: FramedConnection, request: ControlOf<"list">): Promise<void> {
    const { prefix } = request;
    const problem = prefix === undefined ? undefined : pathProblem(prefix);
    if (problem) {
      return this.#refuse(fc, ERROR_CODE.badName, `Cannot list: ${problem}`);
    }
    const { files, dirs } = await this.#settings.catalog.listTree(prefix);
    // One page of files-then-folders, so a listing never exceeds the control cap.
    const start = Math.min(request.offset ?? 0, files.length + dirs.length);
    const end = Math.min(
      start + LISTING_PAGE_ENTRIES,
      files.length + dirs.length,
    );
    const pageDirs = dirs.slice(
      Math.max(0, start - files.length),
      Math.max(0, end - files.length),
    );
    await fc.send({
      type: "listing",
      files: files.slice(start, end),
      ...(pageDirs.length > 0 ? { dirs: pageDirs } : {}),
      ...(end < files.length + dirs.length ? { next: end } : {}),
    });
  }

  /** Whether the stored file of that name already has the size and digest offered. */
  async #holds(put: ControlOf<"put">): Promise<boolean> {
    const entry = await this.#settings.catalog.lookup(put.name);
    return entry?.size === put.size && entry.sha256 === put.sha256;
  }

  async #sizeProblem(put: ControlOf<"put">): Promise<string | undefined> {
    const { maxFileSize, maxTotalBytes, catalog } = this.#settings;
    if (put.size > maxFileSize) {
      return `${put.size} bytes exceeds the ${maxFileSize}-byte file limit`;
    }
    if (maxTotalBytes < Number.MAX_SAFE_INTEGER) {
      const stored = await catalog.totalBytes();
      if (stored + put.size > maxTotalBytes) {
        return `${put.size} more bytes would exceed the ${maxTotalBytes}-byte storage limit (${stored} used)`;
      }
    }
    return chunkSizeRefusal(put.chunkSize, put.size)?.reason;
  }

  async #send(fc: FramedConnection, get: ControlOf<"get">): Promise<void> {
    if (get.eager) return await this.#sendEager(fc, get);
    const { catalog, chunkSize, simulator, log } = this.#settings;
    const problem = pathProblem(get.name) ??
      await catalog.linkProblem(get.name);
    if (problem) {
      return this.#refuse(
        fc,
        ERROR_CODE.badName,
        `Cannot send file: ${problem}`,
      );
    }
    const entry = await catalog.lookup(get.name);
    if (!entry) {
      return this.#refuse(
        fc,
        ERROR_CODE.notFound,
        `Cannot find ${JSON.stringify(get.name)}: no such file on the server`,
      );
    }
    using file = await Deno.open(catalog.pathOf(get.name), { read: true });
    const transferId = this.#nextTransferId++;
    const compression = compressionOf(get.compress);
    const fileChunkSize = await chunkSizeOf(
      file,
      entry.size,
      compression,
      chunkSize,
    );
    const count = chunkCount(entry.size, fileChunkSize);
    await fc.send({
      ...offerOf(transferId, entry, fileChunkSize),
      earlyNack: true,
    });
    log.info(`File split into ${count} chunks`);
    try {
      const stats = await sendChunks(fc, file, {
        transferId,
        size: entry.size,
        chunkSize: fileChunkSize,
        sha256: entry.sha256,
        compression,
        simulator,
        maxRounds: MAX_SERVER_ROUNDS,
        log,
      });
      log.info(
        `Sent ${entry.name} to ${fc.peer}: verified after ${stats.attempts} round(s)`,
      );
    } catch (error) {
      if (!(error instanceof RemoteError)) throw error;
      log.error(`Client gave up on ${entry.name}: ${error.message}`);
    }
  }

  /**
   * An eager get: a file of at most one chunk goes out at once as its
   * `offer` and data frame, queued like the replies to eager puts, and the
   * server reads the next request without waiting. The client checks the
   * bytes against the offer's SHA-256 and gets a damaged file the ordinary
   * way. A simulated loss damages the frame instead, so the framing holds.
   */
  async #sendEager(
    fc: FramedConnection,
    get: ControlOf<"get">,
  ): Promise<void> {
    const { catalog, chunkSize, simulator, log } = this.#settings;
    const refuse = (code: RemoteError["code"], problem: string) =>
      this.#refuse(
        fc,
        code,
        `Cannot send ${JSON.stringify(get.name)}: ${problem}`,
      );
    const syntax = pathProblem(get.name);
    if (syntax) return refuse(ERROR_CODE.badName, syntax);
    const read = await catalog.readSmall(get.name, chunkSize);
    if (read.kind === "refused") {
      return refuse(ERROR_CODE.badName, read.problem);
    }
    if (read.kind === "missing") {
      return refuse(ERROR_CODE.notFound, "no such file on the server");
    }
    if (read.kind === "tooLarge") {
      return refuse(
        ERROR_CODE.badRequest,
        "an eager get needs a file of at most one chunk",
      );
    }
    const { entry, bytes } = read;
    const transferId = this.#nextTransferId++;
    fc.queue(offerOf(transferId, entry, chunkSize));
    if (entry.size > 0) {
      const wire = new ChunkCompressor(compressionOf(get.compress)).encode(
        bytes,
      );
      const frame = encodeData(transferId, 0, wire.payload, wire.flags);
      if ((simulator?.fate(0) ?? "deliver") !== "deliver") {
        simulator!.corrupt(frame.subarray(DATA_FRAME_OVERHEAD));
      }
      fc.queueFrame(frame);
    }
    log.debug(`Sent ${entry.name} eagerly (${entry.size} bytes)`);
  }
}

/** What one session stored through eager puts and `mkdir`, for its summary line. */
interface TreeTally {
  files: number;
  bytes: number;
  dirs: number;
}

/** The `offer` of a stored file, sent in `chunkSize` chunks. */
function offerOf(
  transferId: number,
  entry: FileEntry,
  chunkSize: number,
): ControlOf<"offer"> {
  return {
    type: "offer",
    transferId,
    name: entry.name,
    size: entry.size,
    chunkSize,
    sha256: entry.sha256,
    mtimeMs: entry.mtimeMs,
    ...(entry.mode === undefined ? {} : { mode: entry.mode }),
  };
}

/** The compression a client asked for; an unknown mode means none. */
function compressionOf(requested: string | undefined): CompressionMode {
  return COMPRESSION_MODES.find((mode) => mode === requested) ?? "none";
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
