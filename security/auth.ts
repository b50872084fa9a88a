/**
 * Shared-token authentication without sending the token: the server's hello
 * carries a random challenge, the client answers with HMAC-SHA256(token,
 * challenge), and the server compares in constant time. Failures are
 * throttled per address.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/** A fresh random challenge, base64. */
export function newChallenge(): string {
  return randomBytes(32).toString("base64");
}

/** The client's answer to `challenge`: HMAC-SHA256 keyed with the token, hex. */
export function proofFor(token: string, challenge: string): string {
  return createHmac("sha256", token).update(challenge).digest("hex");
}

/** Whether `proof` answers `challenge` for `token`, compared in constant time. */
export function proofMatches(
  token: string,
  challenge: string,
  proof: string,
): boolean {
  const wellFormed = /^[0-9a-f]{64}$/.test(proof);
  const expected = Buffer.from(proofFor(token, challenge), "hex");
  const given = wellFormed
    ? Buffer.from(proof, "hex")
    : Buffer.alloc(expected.length);
  return timingSafeEqual(expected, given) && wellFormed;
}

/** Whether `host` names this machine only. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Options for {@linkcode AuthThrottle}. */
export interface AuthThrottleOptions {
  /** Pause after the first failure, doubling with each further one. @default 1000 */
  baseDelayMs?: number;
  /** Longest pause. @default 30000 */
  maxDelayMs?: number;
  /** Addresses remembered at most; the oldest are forgotten first. @default 10000 */
  maxAddresses?: number;
}

/** Remembers failed logins per address and says how long the next try must wait. */
export class AuthThrottle {
  #failures = new Map<string, number>();
  #baseDelayMs: number;
  #maxDelayMs: number;
  #maxAddresses: number;

  /** Creates a throttle. */
  constructor(options: AuthThrottleOptions = {}) {
    this.#baseDelayMs = options.baseDelayMs ?? 1000;
    this.#maxDelayMs = options.maxDelayMs ?? 30_000;
    this.#maxAddresses = options.maxAddresses ?? 10_000;
  }

  /** Milliseconds the next attempt from `address` waits before it is heard. */
  delayFor(address: string): number {
    const failures = this.#failures.get(address) ?? 0;
    if (failures === 0) return 0;
    return Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (failures - 1));
  }

  /** Records a failed attempt. */
  fail(address: string): void {
    const failures = (this.#failures.get(address) ?? 0) + 1;
    this.#failures.delete(address);
    this.#failures.set(address, failures);
    if (this.#failures.size > this.#maxAddresses) {
      this.#failures.delete(this.#failures.keys().next().value!);
    }
  }

  /** Forgets the failures of an address that logged in. */
  succeed(address: string): void {
    this.#failures.delete(address);
  }
}
