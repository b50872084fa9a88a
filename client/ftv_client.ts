/**
 * A connection to an ftv server, and the one owner of what the client says
 * on it: uploads (`send`), downloads (`get`), listings, and the pipelined
 * requests a tree uses. Every request message is built here.
 *
 * @module
 */

import { ERROR_CODE, ProtocolError, TransferError } from "../base/errors.ts";
import { secondsSince } from "../base/clock.ts";
import { COMPONENT, Logger } from "../base/log.ts";
import { basename } from "../base/paths.ts";
import { chunkCount } from "../engine/chunks.ts";
import { chunkSizeOf } from "../engine/chunk_reader.ts";
import { FileSource } from "../engine/chunk_source.ts";
import { ChunkStore } from "../engine/chunk_store.ts";
import { receiveChunks } from "../engine/receiver.ts";
import { sendChunks } from "../engine/sender.ts";
import type {
  ChunkFaults,
  ProgressEvent,
  TransferStats,
} from "../engine/transfer.ts";
import type { FramedConnection } from "../net/connection.ts";
import { RateLimiter } from "../net/rate_limit.ts";
import {
  type CompressionMode,
  DEFAULT_PORT,
  type DirEntry,
  FEATURE,
  type FileEntry,
  MODE_MASK,
} from "../protocol.ts";
import type { TrustMode } from "../security/trust.ts";
import { checkChunkSize, openSession, type Session } from "./connect.ts";
import { AUTO_GROUP, type FecMode, fecText } from "../engine/fec.ts";
import {
  EagerDownloads,
  EagerUploads,
  FolderRequests,
  type PipelinedOptions,
} from "./pipelined.ts";

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
  /** Pacing shared with other transfers (a tree's files); wins over `limitRate`. */
  limiter?: RateLimiter;
  /** Told how many chunks the receiving side already held when the transfer started. */
  onReady?: (heldChunks: number) => void;
  /** Told how far the transfer is, after every chunk. */
  onProgress?: (event: ProgressEvent) => void;
  /** Where this transfer logs. @default the client's logger */
  log?: Logger;
  /**
   * Parity on the way, so lost or damaged chunks are rebuilt without a
   * round trip: `auto` (added once loss is seen, sized to it), a fixed
   * `{ k, m }`, or `off`. Used only with a server that supports it.
   * @default "off"
   */
  fec?: FecMode;
}

/** Options for {@linkcode FtvClient.send}. */
export interface SendOptions extends TransferOptions {
  /** Loses and damages outgoing chunks, to see repair at work. */
  simulator?: ChunkFaults;
  /**
   * The file's digest as it is now, if already known: a server holding the
   * file answers at once, and the file is not hashed again while it is sent.
   */
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
  /**
   * Refuse the file unless it has this SHA-256: before any of it travels
   * when the server offers another digest, and again before it takes its
   * final name.
   */
  expectSha256?: string;
  /** Sync the file to disk before it takes its final name. @default true */
  fsync?: boolean;
}

/** Where a server listens. */
export interface ServerAddress {
  /** Its host name or address. */
  host: string;
  /** Its port. */
  port: number;
}

/** Options for {@linkcode send}, {@linkcode get} and {@linkcode roundTrip}. */
export interface ClientOptions extends ConnectOptions {
  /** Repair rounds per connection, and reconnects in a row without progress. @default 3 */
  maxRetries?: number;
  /** First reconnect delay in milliseconds, doubling each time. @default 500 */
  retryDelayMs?: number;
  /**
   * Several servers sharing one store (S3), instead of `host` and `port`:
   * the first is used until it fails, then the next, which resumes the
   * transfer from what the store holds.
   */
  servers?: readonly ServerAddress[];
  /**
   * How long a server answering `busy` is asked again (every second or
   * two) before the answer counts as a failure. @default 60000
   */
  busyPatienceMs?: number;
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

/**
 * Most entries (files and folders) a listing may hold, against a server
 * that pages forever.
 */
export const MAX_LISTED_ENTRIES = 1_000_000;

/**
 * Most pages a listing may take: pages of 100 entries on average reach
 * {@linkcode MAX_LISTED_ENTRIES} (ftv's server sends 10,000 a page).
 */
export const MAX_LISTING_PAGES = 10_000;

/** A connection to an ftv server. */
export class FtvClient implements Disposable {
  /** Where this client logs. */
  readonly log: Logger;
  /** Chunk size the server announced. */
  readonly chunkSize: number;
  #fc: FramedConnection;
  #forgetSignal: () => void;
  #nextId = 1;
  /** The server takes chunks of zeros as frames with no payload. */
  #zeroChunks: boolean;
  /** The server understands parity frames and loss reports. */
  #fec: boolean;

  private constructor(session: Session, log: Logger) {
    this.#fc = session.fc;
    this.chunkSize = session.chunkSize;
    this.#zeroChunks = session.features.includes(FEATURE.zeroChunks);
    this.#fec = session.features.includes(FEATURE.fec);
    this.log = log;
    this.#forgetSignal = session.forgetSignal;
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
    const log = options.log ?? new Logger(COMPONENT.client);
    const session = await openSession({
      host: options.host ?? "localhost",
      port: options.port ?? DEFAULT_PORT,
      timeoutMs: options.timeoutMs ?? 30_000,
      token: options.token,
      tls: options.tls,
      signal: options.signal,
      log,
    });
    return new FtvClient(session, log);
  }

  /** Bytes written to the server so far. */
  get bytesSent(): number {
    return this.#fc.bytesSent;
  }

  /** Bytes read from the server so far. */
  get bytesReceived(): number {
    return this.#fc.bytesReceived;
  }

  /** Uploads a file; resolves once the server has verified it. */
  async send(path: string, options: SendOptions = {}): Promise<TransferResult> {
    const started = performance.now();
    const log = options.log ?? this.log;
    using file = await Deno.open(path, { read: true });
    const info = await file.stat();
    if (!info.isFile) {
      throw new TransferError(`Cannot send ${path}: not a plain file`);
    }
    const name = options.as ?? basename(path);
    const compression = options.compress ?? "auto";
    const fec = this.#fec ? options.fec ?? "off" : "off";
    const source = new FileSource(file);
    const chunkSize = await chunkSizeOf(
      source,
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
      ...(info.mode === null ? {} : { mode: info.mode & MODE_MASK }),
      earlyNack: true,
      ...(fec === "off" ? {} : { fecK: fec === "auto" ? AUTO_GROUP : fec.k }),
    });
    log.info(
      `Uploading ${path} as ${name} (${info.size} bytes, ${
        chunkCount(info.size, chunkSize)
      } chunks)`,
    );
    const stats = await sendChunks(this.#fc, source, {
      compression,
      size: info.size,
      chunkSize,
      ...this.#pacing(options, name, info.size),
      ...(options.knownSha256
        ? { knownSha256: options.knownSha256, sha256: options.knownSha256 }
        : {}),
      ...(options.simulator ? { simulator: options.simulator } : {}),
      ...(options.onDigest ? { onDigest: options.onDigest } : {}),
      zeroChunks: this.#zeroChunks,
      fec,
      log,
    });
    log.info(`Server verified ${name}: ${stats.sha256}`);
    return { ...stats, name, path, seconds: secondsSince(started) };
  }

  /** Downloads a stored file, verifying every chunk and the whole file. */
  async get(name: string, options: GetOptions = {}): Promise<TransferResult> {
    const started = performance.now();
    const log = options.log ?? this.log;
    await this.#fc.send({
      type: "get",
      name,
      compress: options.compress ?? "auto",
      ...(this.#fec && (options.fec ?? "off") !== "off"
        ? { fec: fecText(options.fec!) }
        : {}),
    });
    const offer = await this.#fc.expect("offer");
    checkChunkSize(offer.chunkSize, offer.size);
    await this.#refuseUnexpected(name, offer.sha256, options.expectSha256);
    const path = options.out ?? basename(name);
    const claimed = await ChunkStore.claim(path, {
      name: offer.name,
      size: offer.size,
      chunkSize: offer.chunkSize,
      mtimeMs: offer.mtimeMs,
      sha256: offer.sha256,
    }, {
      fsync: options.fsync ?? true,
      attributes: { mode: offer.mode, mtimeMs: offer.mtimeMs },
    });
    if (!claimed.ok) {
      throw new TransferError(
        `Cannot get ${JSON.stringify(name)}: ${claimed.refusal.reason}`,
      );
    }
    const store = claimed.value;
    try {
      log.info(`Original file checksum: ${offer.sha256}`);
      log.info(`Expected chunks: ${store.count}`);
      const stats = await receiveChunks(this.#fc, store, {
        ...this.#pacing(options, name, offer.size),
        transferId: offer.transferId,
        maxRetries: options.maxRetries ?? DEFAULT_MAX_RETRIES,
        earlyNack: offer.earlyNack === true,
        ...(offer.fecK === undefined ? {} : { fecK: offer.fecK }),
        ...(options.expectSha256 === undefined
          ? {}
          : { expectedSha256: options.expectSha256.toLowerCase() }),
        log: log,
      });
      log.info(`File saved to ${path}`);
      return { ...stats, name, path, seconds: secondsSince(started) };
    } finally {
      await store.suspend();
    }
  }

  /**
   * Before a byte of `name` travels: a file offered with another digest
   * than `expected` is refused, the server told why, and nothing written.
   */
  async #refuseUnexpected(
    name: string,
    offered: string,
    expected: string | undefined,
  ): Promise<void> {
    if (expected === undefined || offered === expected.toLowerCase()) return;
    const reason =
      `the server's copy has SHA-256 ${offered}, not the expected ${expected.toLowerCase()}`;
    // Not digest_mismatch: nothing travelled, so the server has nothing to re-check.
    await this.#fc.sendError(
      ERROR_CODE.badRequest,
      `Cannot take the file: ${reason}`,
    );
    throw new TransferError(
      `Cannot get ${JSON.stringify(name)}: ${reason}`,
    );
  }

  /** The rate limit and callbacks a transfer of `name` hands to the chunk engine. */
  #pacing(options: TransferOptions, name: string, total: number) {
    const { onProgress } = options;
    return {
      ...(options.limiter
        ? { limiter: options.limiter }
        : options.limitRate === undefined
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

  /**
   * The server's stored files and folders, all or only `prefix` and what
   * lies under it. Each page must hold entries and say where the next one
   * starts (its offset plus its entries); past
   * {@linkcode MAX_LISTED_ENTRIES} entries or {@linkcode MAX_LISTING_PAGES}
   * pages the listing is refused, so a hostile server cannot page forever.
   */
  async listTree(
    prefix?: string,
  ): Promise<{ files: FileEntry[]; dirs: DirEntry[] }> {
    const files: FileEntry[] = [];
    const dirs: DirEntry[] = [];
    const what = prefix === undefined
      ? "list"
      : `list ${JSON.stringify(prefix)}`;
    let offset: number | undefined = 0;
    for (let pages = 1; offset !== undefined; pages++) {
      await this.#fc.send({
        type: "list",
        ...(prefix === undefined ? {} : { prefix }),
        ...(offset > 0 ? { offset } : {}),
      });
      const page = await this.#fc.expect("listing");
      const entries = page.files.length + (page.dirs?.length ?? 0);
      const past = offset + entries > MAX_LISTED_ENTRIES
        ? `${MAX_LISTED_ENTRIES.toLocaleString("en-US")} entries`
        : pages > MAX_LISTING_PAGES
        ? `${MAX_LISTING_PAGES.toLocaleString("en-US")} pages`
        : undefined;
      if (past !== undefined) {
        throw new TransferError(
          `Cannot ${what}: the server's listing runs past ${past}, the most a client accepts`,
        );
      }
      if (
        page.next !== undefined &&
        (entries === 0 || page.next !== offset + entries)
      ) {
        throw new ProtocolError(
          `Cannot ${what}: a page of ${entries} entries at offset ${offset} says the next starts at ${page.next}`,
        );
      }
      files.push(...page.files);
      dirs.push(...(page.dirs ?? []));
      offset = page.next;
    }
    return { files, dirs };
  }

  /**
   * Pipelined eager puts over this connection, for many small files.
   *
   * @example
   * ```ts
   * import { FtvClient } from "./ftv_client.ts";
   * using client = await FtvClient.connect({ host: "127.0.0.1", port: 9999 });
   * const uploads = client.eagerUploads({ compression: "auto" });
   * const bytes = new TextEncoder().encode("hello");
   * const sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
   * await uploads.push({ name: "a.txt", bytes, sha256, mode: 0o644, mtimeMs: 0 }, console.log);
   * await uploads.finish();
   * ```
   */
  eagerUploads(options: PipelinedOptions): EagerUploads {
    return new EagerUploads(this.#fc, this.chunkSize, this.#id, options);
  }

  /** Pipelined eager gets over this connection, for many small files. */
  eagerDownloads(options: { compression: CompressionMode }): EagerDownloads {
    return new EagerDownloads(this.#fc, options);
  }

  /** Pipelined `mkdir` requests over this connection, for a tree's folders. */
  folders(options: { limiter?: RateLimiter } = {}): FolderRequests {
    return new FolderRequests(this.#fc, this.#id, options);
  }

  /** A fresh client-chosen transfer id. */
  #id = (): number => this.#nextId++;

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
