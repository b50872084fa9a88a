/**
 * Reconnecting after a dropped connection, a restarted server or a damaged
 * stream: exponential backoff with jitter, and a retry budget that counts
 * consecutive failures without progress, so a long transfer over a link that
 * keeps breaking still finishes while a dead server is given up on.
 *
 * With several servers sharing one store, a failure moves to the next one
 * at once, and only a round in which every server failed counts against the
 * budget and waits. A server that answers `busy` (another transfer of the
 * same file holds it, for instance one whose server died and whose lease
 * has yet to run out) is asked again every second or two for up to
 * `busyPatienceMs` before `busy` counts as a failure.
 *
 * @module
 */

import { delay } from "../base/clock.ts";
import { COMPONENT, Logger } from "../base/log.ts";
import {
  type ClientOptions,
  DEFAULT_MAX_RETRIES,
  FtvClient,
  type ServerAddress,
} from "./ftv_client.ts";
import {
  ConnectionError,
  ERROR_CODE,
  ProtocolError,
  RemoteError,
  TransferError,
} from "../base/errors.ts";

/** Options for {@linkcode withReconnect}. */
export interface ReconnectOptions {
  /** Consecutive failed attempts without progress before giving up. */
  maxRetries: number;
  /** First backoff delay in milliseconds; it doubles after each failure. @default 500 */
  retryDelayMs?: number;
  /** Longest single backoff delay. @default 30000 */
  maxDelayMs?: number;
  /** Stops retrying (and waiting) once aborted; the abort reason is thrown. */
  signal?: AbortSignal;
  log?: Logger;
  /** Servers sharing one store, tried in turn (see the module docs). */
  servers?: readonly ServerAddress[];
  /** How long `busy` answers are asked again before they count as failures. @default 60000 */
  busyPatienceMs?: number;
}

/** Longest pause between two asks of a server that answered `busy`. */
const BUSY_DELAY_MS = 2000;

/** What an attempt reports so the retry budget can tell progress from failure. */
export interface Attempt {
  /** Number of this connection attempt, from 1. */
  readonly number: number;
  /** Call with the chunks the receiver held when the transfer started. */
  held(chunks: number): void;
  /** The server to connect to this time, when several were given. */
  readonly server: ServerAddress | undefined;
}

/**
 * Whether another connection might succeed where this one failed. Anything
 * not named here is final: a `WrongPeerError` (the address does not speak
 * ftv/1), a refused token or server, a digest the user did not expect.
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof ConnectionError || error instanceof ProtocolError) {
    return true;
  }
  if (error instanceof TransferError) return error.retryable;
  if (error instanceof RemoteError) {
    return error.code === ERROR_CODE.busy ||
      error.code === ERROR_CODE.protocol ||
      error.code === ERROR_CODE.internal ||
      error.code === ERROR_CODE.digestMismatch;
  }
  return false;
}

/** Backoff before retry `failure` (from 1): doubling, capped, with ±50% jitter. */
export function backoffMs(
  failure: number,
  retryDelayMs: number,
  maxDelayMs: number,
): number {
  const base = Math.min(maxDelayMs, retryDelayMs * 2 ** (failure - 1));
  return base * (0.5 + Math.random());
}

/**
 * Runs `task` until it succeeds, retrying retryable failures. The budget is
 * reset whenever an attempt starts with more chunks held than any before it.
 */
export async function withReconnect<T>(
  options: ReconnectOptions,
  task: (attempt: Attempt) => Promise<T>,
): Promise<T> {
  const { signal } = options;
  const budget = new RetryBudget(options);
  for (let number = 1;; number++) {
    signal?.throwIfAborted();
    const attempt: Attempt = {
      number,
      held: (chunks) => budget.held(chunks),
      server: budget.server,
    };
    try {
      return await task(attempt);
    } catch (error) {
      signal?.throwIfAborted();
      const wait = isRetryable(error) ? budget.failed(error) : undefined;
      if (wait === undefined) throw error;
      options.log?.warn(
        `${(error as Error).message}; ${budget.next(wait)}`,
      );
      if (wait > 0) await delay(wait, signal);
    }
  }
}

/** The retry budget of {@linkcode withReconnect}, and the server to use next. */
class RetryBudget {
  #options: ReconnectOptions;
  #servers: readonly ServerAddress[];
  #at = 0;
  /** Servers failed in a row this round (a round counts once all have). */
  #triedThisRound = 0;
  #failures = 0;
  #bestHeld = -1;
  #busySince: number | undefined;
  #busyAsks = 0;

  constructor(options: ReconnectOptions) {
    this.#options = options;
    this.#servers = options.servers ?? [];
  }

  /** The server to connect to now (several given), or `undefined`. */
  get server(): ServerAddress | undefined {
    return this.#servers[this.#at];
  }

  /** An attempt started with `chunks` held: more than ever before is progress. */
  held(chunks: number): void {
    if (chunks <= this.#bestHeld) return;
    if (this.#bestHeld >= 0) {
      this.#failures = 0;
      this.#triedThisRound = 0;
      this.#busySince = undefined;
    }
    this.#bestHeld = chunks;
  }

  /** Notes a retryable failure: milliseconds to wait before the next attempt, or `undefined` to give up. */
  failed(error: unknown): number | undefined {
    const { maxRetries } = this.#options;
    const retryDelayMs = this.#options.retryDelayMs ?? 500;
    const maxDelayMs = this.#options.maxDelayMs ?? 30_000;
    if (error instanceof RemoteError && error.code === ERROR_CODE.busy) {
      this.#busySince ??= performance.now();
      const patience = this.#options.busyPatienceMs ?? 60_000;
      if (performance.now() - this.#busySince < patience) {
        return backoffMs(++this.#busyAsks, retryDelayMs, BUSY_DELAY_MS);
      }
    } else [this.#busySince, this.#busyAsks] = [undefined, 0];
    if (this.#servers.length > 1) {
      this.#at = (this.#at + 1) % this.#servers.length;
      if (++this.#triedThisRound < this.#servers.length) return 0;
      this.#triedThisRound = 0;
    }
    if (this.#failures >= maxRetries) return undefined;
    this.#failures++;
    return backoffMs(this.#failures, retryDelayMs, maxDelayMs);
  }

  /** What happens after a failure, for the log line. */
  next(wait: number): string {
    const server = this.server;
    const where = server ? ` to ${server.host}:${server.port}` : "";
    const seconds = (wait / 1000).toFixed(1);
    if (this.#busySince !== undefined && this.#busyAsks > 0) {
      return `asking again${where} in ${seconds} s`;
    }
    return wait === 0
      ? `reconnecting${where}`
      : `reconnecting${where} in ${seconds} s (retry ${this.#failures}/${this.#options.maxRetries})`;
  }
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
    ...(options.servers ? { servers: options.servers } : {}),
    ...(options.busyPatienceMs === undefined
      ? {}
      : { busyPatienceMs: options.busyPatienceMs }),
    log,
  };
}

/**
 * Runs `run` on a fresh connection until it succeeds, reconnecting as
 * {@linkcode withReconnect} does; the result counts the connections used.
 */
export function reconnecting<T extends { connections?: number }>(
  options: ClientOptions,
  run: (client: FtvClient, onReady: (held: number) => void) => Promise<T>,
): Promise<T> {
  const log = options.log ?? new Logger(COMPONENT.client);
  return withReconnect(reconnectOptions(options, log), async (attempt) => {
    using client = await FtvClient.connect({
      ...options,
      ...attempt.server,
      log,
    });
    const result = await run(client, (held) => attempt.held(held));
    return { ...result, connections: attempt.number };
  });
}
