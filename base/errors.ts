/**
 * The one table of ftv's named failures: the codes a refusal carries on
 * the wire, the errors callers catch, and the exit code each one maps to.
 *
 * Two ways to fail, each used for one thing:
 * - A refusal that a caller acts on and goes on (a bad name, a busy file,
 *   a full store) is returned as a {@linkcode Refusal}: a code from
 *   {@linkcode ERROR_CODE} and a reason. Checks return `Refusal | undefined`
 *   ("why not, or nothing"); operations that produce a value return an
 *   {@linkcode Outcome}.
 * - A failure that ends the operation is thrown as one of the error classes
 *   below (or a built-in for a bad argument). Built-in errors are bugs or
 *   bad arguments, never signals: {@linkcode exitCodeOf} maps only these
 *   classes, and anything else to a plain failure.
 *
 * @module
 */

/** Error codes carried by `error` messages (and, later, mapped to HTTP statuses). */
export const ERROR_CODE = {
  badRequest: "bad_request",
  badName: "bad_name",
  notFound: "not_found",
  busy: "busy",
  unauthorized: "unauthorized",
  tooLarge: "too_large",
  /** The server's disk (or store) has no space left. */
  noSpace: "no_space",
  /** The stored file no longer matches the digest it was received with. */
  damaged: "damaged",
  unsupportedVersion: "unsupported_version",
  digestMismatch: "digest_mismatch",
  tooManyRetries: "too_many_retries",
  protocol: "protocol_error",
  internal: "internal_error",
} as const;

/** One of {@linkcode ERROR_CODE}'s values. */
export type ErrorCode = typeof ERROR_CODE[keyof typeof ERROR_CODE];

/** Why a request was refused: its code and a reason for people. */
export interface Refusal {
  /** What kind of refusal, as it travels. */
  readonly code: ErrorCode;
  /** One line for people, values quoted: `"a/b" is a symbolic link`. */
  readonly reason: string;
}

/** Builds a {@linkcode Refusal}. */
export function refusal(code: ErrorCode, reason: string): Refusal {
  return { code, reason };
}

/** What an operation that may be refused produced. */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly refusal: Refusal };

/** Process exit codes of the `ftv` command (130: stopped by Ctrl-C, as shells count 128 + SIGINT). */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  auth: 3,
  interrupted: 130,
} as const;

/** The peer broke the protocol: the connection cannot continue. */
export class ProtocolError extends Error {
  /** Builds the error; `cause` is passed through. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

/** The peer sent an `error` frame. */
export class RemoteError extends Error {
  /** The peer's error code. */
  readonly code: ErrorCode;
  /** Builds the error from the peer's code and message. */
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RemoteError";
    this.code = code;
  }
}

/** The connection broke, timed out or was closed while in use. */
export class ConnectionError extends Error {
  /** Builds the error; `cause` is passed through. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionError";
  }
}

/**
 * The address answered, but not in ftv/1 (an HTTP or SSH server, TLS where
 * plain TCP was expected): retrying cannot help.
 */
export class WrongPeerError extends Error {
  /** Builds the error; `cause` is passed through. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WrongPeerError";
  }
}

/** A transfer that ended without a verified file; the message says why. */
export class TransferError extends Error {
  /** Whether starting the transfer again may succeed (e.g. after a digest mismatch). */
  readonly retryable: boolean;
  /** Builds the error; `cause` is passed through. */
  constructor(
    message: string,
    options?: ErrorOptions & { retryable?: boolean },
  ) {
    super(message, options);
    this.name = "TransferError";
    this.retryable = options?.retryable ?? false;
  }
}

/**
 * The store behind a server (an S3 service) failed or refused a request:
 * the operation that needed it ends, the server goes on.
 */
export class StoreError extends Error {
  /** The HTTP status the store answered, or 0 when it could not be reached. */
  readonly status: number;
  /** The store's error code (`NoSuchUpload`, `PreconditionFailed`, ...), or `""`. */
  readonly code: string;
  /** Builds the error; `cause` is passed through. */
  constructor(
    message: string,
    status: number,
    code: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "StoreError";
    this.status = status;
    this.code = code;
  }
}

/** The server refused our token, or wants one we do not have: exit code 3. */
export class AuthenticationError extends Error {
  /** Builds the error; `cause` is passed through. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "AuthenticationError";
  }
}

/**
 * The user stopped the command (Ctrl-C); the message says where the
 * transfer stopped: exit code 130.
 */
export class InterruptedError extends Error {
  /** Builds the error; `cause` is passed through. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InterruptedError";
  }
}

/** Why a TLS client refused a server. */
export type TrustErrorCode =
  /** The server's CA is not the pinned one. */
  | "pin-mismatch"
  /** The server's CA differs from the one in known_hosts. */
  | "host-changed"
  /** The server's certificate carries no CA to check a fingerprint against. */
  | "no-ca"
  /** The server does not speak TLS 1.3. */
  | "tls-version"
  /** The TLS handshake rejected the server's certificate. */
  | "untrusted";

/** The server could not be trusted; nothing was sent to it: exit code 3. */
export class TrustError extends Error {
  /** Why the server was refused. */
  readonly code: TrustErrorCode;
  /** Builds the error; `cause` is passed through. */
  constructor(code: TrustErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TrustError";
    this.code = code;
  }
}

/** Whether `error` is the operating system's "no space left on device" (ENOSPC). */
export function isNoSpace(error: unknown): boolean {
  return (error as { code?: unknown } | undefined)?.code === "ENOSPC";
}

/** The exit code for a command that failed with `error`. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof AuthenticationError || error instanceof TrustError) {
    return EXIT.auth;
  }
  if (error instanceof InterruptedError) return EXIT.interrupted;
  return EXIT.failed;
}

/** The code an error should carry in an `error` frame. */
export function errorCodeOf(error: unknown): ErrorCode {
  if (error instanceof RemoteError) return error.code;
  if (error instanceof ProtocolError) return ERROR_CODE.protocol;
  return ERROR_CODE.internal;
}
