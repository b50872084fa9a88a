/**
 * Reconnecting after a dropped connection, a restarted server or a damaged
 * stream: exponential backoff with jitter, and a retry budget that counts
 * consecutive failures without progress, so a long transfer over a link that
 * keeps breaking still finishes while a dead server is given up on.
 *
 * @module
 */

import { delay } from "../base/clock.ts";
import { COMPONENT, Logger } from "../base/log.ts";
import {
  type ClientOptions,
  DEFAULT_MAX_RETRIES,
  FtvClient,
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
}

/** What an attempt reports so the retry budget can tell progress from failure. */
export interface Attempt {
  /** Number of this connection attempt, from 1. */
  readonly number: number;
  /** Call with the chunks the receiver held when the transfer started. */
  held(chunks: number): void;
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
  const retryDelayMs = options.retryDelayMs ?? 500;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  let failures = 0;
  let bestHeld = -1;
  const { signal } = options;
  for (let number = 1;; number++) {
    signal?.throwIfAborted();
    const attempt: Attempt = {
      number,
      held(chunks) {
        if (chunks > bestHeld) {
          if (bestHeld >= 0) failures = 0;
          bestHeld = chunks;
        }
      },
    };
    try {
      return await task(attempt);
    } catch (error) {
      signal?.throwIfAborted();
      if (!isRetryable(error) || failures >= options.maxRetries) throw error;
      failures++;
      const wait = backoffMs(failures, retryDelayMs, maxDelayMs);
      options.log?.warn(
        `${(error as Error).message}; reconnecting in ${
          (wait / 1000).toFixed(1)
        } s (retry ${failures}/${options.maxRetries})`,
      );
      await delay(wait, signal);
    }
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
    using client = await FtvClient.connect({ ...options, log });
    const result = await run(client, (held) => attempt.held(held));
    return { ...result, connections: attempt.number };
  });
}
