/**
 * The one way ftv talks to an S3 service: every request signed with SigV4
 * by aws4fetch's signer (`UNSIGNED-PAYLOAD`, so no body is hashed for
 * signing), sent path-style (`ENDPOINT/BUCKET/KEY`). Requests without a
 * large body go through Deno's `fetch`; object and part bodies go through
 * `node:http` with an explicit `Content-Length`, because `fetch` copies a
 * `Uint8Array` body and sends a stream body chunked, which RGW 16 refuses
 * with 411 (measured and explained in `tools/ceph/NOTES.md`).
 *
 * Several endpoints (gateways of one cluster) may be given: a request that
 * cannot reach one, or gets 500/502/503/504 from it, is sent to the next,
 * and the next requests stay there.
 *
 * @module
 */

import { AwsV4Signer } from "aws4fetch";
import { Buffer } from "node:buffer";
import http from "node:http";
import https from "node:https";
import { StoreError } from "../../base/errors.ts";
import { delay } from "../../base/clock.ts";
import { tagText } from "./xml.ts";

/** Where the bucket is and who we are. */
export interface S3Config {
  /** Gateways of one service, e.g. `http://127.0.0.1:7480`; the first is used until it fails. */
  endpoints: readonly string[];
  bucket: string;
  /** The region signed for. @default "us-east-1" */
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Milliseconds a request may wait for its answer's header (and a body upload may stall). @default 30000 */
  timeoutMs?: number;
}

/** One request. */
export interface S3Request {
  method: "GET" | "HEAD" | "PUT" | "POST" | "DELETE";
  /** The object's key; none for the bucket itself. */
  key?: string;
  /** Query parameters (`uploads`, `partNumber`, `list-type`...). */
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /**
   * The body: one piece, or several sent back to back (a part's chunks).
   * More than {@linkcode FETCH_BODY_BYTES} goes through `node:http`.
   */
  body?: Uint8Array | readonly Uint8Array[];
}

/** An answer read whole. */
export interface S3Answer {
  status: number;
  headers: Headers;
  text: string;
}

/** Bodies up to this size go through `fetch` (its copy costs nothing there). */
const FETCH_BODY_BYTES = 64 * 1024;
/** Pause before the first retry on another endpoint; doubles. */
const RETRY_DELAY_MS = 50;
/** Statuses that mean "this gateway cannot serve now", worth another endpoint. */
const RETRY_STATUSES = new Set([500, 502, 503, 504]);

/** Signs and sends requests to one bucket; see the module docs. */
export class S3Client {
  readonly config: S3Config;
  #current = 0;
  #signingCache = new Map<string, ArrayBuffer>();
  #agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: 16 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 16 }),
  };

  /** A client of `config`'s bucket. */
  constructor(config: S3Config) {
    if (config.endpoints.length === 0) {
      throw new TypeError("Cannot reach S3: no endpoint given");
    }
    this.config = config;
  }

  /** `s3://BUCKET` at the endpoints, for log lines. */
  get description(): string {
    return `s3://${this.config.bucket} at ${this.config.endpoints.join(", ")}`;
  }

  /** Sends `request` and reads its whole answer; a store it cannot reach is a {@linkcode StoreError}. */
  send(request: S3Request): Promise<S3Answer> {
    return this.#withFailover(request, async (url, headers) => {
      const pieces = piecesOf(request.body);
      const length = pieces.reduce((sum, piece) => sum + piece.length, 0);
      if (length > FETCH_BODY_BYTES) {
        return await this.#nodeSend(
          request.method,
          url,
          headers,
          pieces,
          length,
        );
      }
      return await this.#fetch(
        request.method,
        url,
        headers,
        length > 0 ? concat(pieces, length) : undefined,
        async (response) => ({
          status: response.status,
          headers: response.headers,
          text: request.method === "HEAD"
            ? (await response.body?.cancel(), "")
            : await response.text(),
        }),
        true,
      );
    });
  }

  /**
   * Sends a bodiless `request` (a `GET`) and hands back the answer with its
   * body unread, for streaming: the caller reads or cancels it. Only the
   * wait for the answer's header is timed.
   */
  open(request: S3Request): Promise<Response> {
    return this.#withFailover(
      request,
      (url, headers) =>
        this.#fetch(
          request.method,
          url,
          headers,
          undefined,
          (response) => Promise.resolve(response),
          false,
        ),
      (response) => response.body?.cancel(),
    );
  }

  /** Lets go of kept-alive connections. */
  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  /** The signed URL and header fields of `request` at endpoint `at`. */
  async #signed(
    request: S3Request,
    at: number,
  ): Promise<{ url: URL; headers: Headers }> {
    const { config } = this;
    const endpoint = config.endpoints[at]!.replace(/\/+$/, "");
    const path = request.key === undefined ? "" : encodeKey(request.key);
    const search = new URLSearchParams(request.query ?? {}).toString();
    const url = `${endpoint}/${encodeURIComponent(config.bucket)}/${path}${
      search ? `?${search}` : ""
    }`;
    const signer = new AwsV4Signer({
      method: request.method,
      url,
      headers: request.headers ?? {},
      accessKeyId: config.accessKeyId,
      secretAccessKey: config.secretAccessKey,
      ...(config.sessionToken ? { sessionToken: config.sessionToken } : {}),
      service: "s3",
      region: config.region,
      cache: this.#signingCache,
    });
    const signed = await signer.sign();
    return { url: signed.url, headers: signed.headers };
  }

  /**
   * Runs `attempt` at the current endpoint, moving to the next one on a
   * network failure or a gateway status, a bounded number of times.
   */
  async #withFailover<T extends { status: number }>(
    request: S3Request,
    attempt: (url: URL, headers: Headers) => Promise<T>,
    discard?: (answer: T) => unknown,
  ): Promise<T> {
    const count = this.config.endpoints.length;
    const attempts = Math.max(3, 2 * count);
    let failure: unknown;
    for (let i = 0; i < attempts; i++) {
      const at = this.#current;
      if (i > 0) await delay(Math.min(1000, RETRY_DELAY_MS * 2 ** (i - 1)));
      try {
        const { url, headers } = await this.#signed(request, at);
        const answer = await attempt(url, headers);
        if (!RETRY_STATUSES.has(answer.status) || i === attempts - 1) {
          return answer;
        }
        await discard?.(answer);
        failure = new StoreError(
          `Cannot ${request.method} ${what(request)}: ${
            this.config.endpoints[at]
          } answered ${answer.status}`,
          answer.status,
          "",
        );
      } catch (error) {
        if (error instanceof StoreError && error.status !== 0) throw error;
        failure = error;
      }
      if (this.#current === at) this.#current = (at + 1) % count;
    }
    if (failure instanceof StoreError) throw failure;
    throw new StoreError(
      `Cannot ${request.method} ${what(request)}: ${
        (failure as Error)?.message ?? failure
      } (tried ${this.config.endpoints.join(", ")})`,
      0,
      "",
      { cause: failure },
    );
  }

  /**
   * `fetch`, given up when the answer's header (and, with `whole`, its body
   * read by `read`) takes longer than the timeout.
   */
  async #fetch<T>(
    method: string,
    url: URL,
    headers: Headers,
    body: Uint8Array | undefined,
    read: (response: Response) => Promise<T>,
    whole: boolean,
  ): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new Error("the store went silent")),
      this.config.timeoutMs ?? 30_000,
    );
    try {
      const response = await fetch(url, {
        method,
        headers,
        ...(body ? { body: body as Uint8Array<ArrayBuffer> } : {}),
        signal: controller.signal,
      });
      if (!whole) clearTimeout(timer);
      return await read(response);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `pieces` as one body of `length` bytes through `node:http`. */
  #nodeSend(
    method: string,
    url: URL,
    headers: Headers,
    pieces: readonly Uint8Array[],
    length: number,
  ): Promise<S3Answer> {
    const secure = url.protocol === "https:";
    const fields: Record<string, string> = { "content-length": String(length) };
    headers.forEach((value, name) => fields[name] = value);
    return new Promise<S3Answer>((resolve, reject) => {
      const request = (secure ? https : http).request({
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method,
        headers: fields,
        agent: secure ? this.#agents.https : this.#agents.http,
      }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", reject);
        response.on("end", () => {
          const answerHeaders = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            if (value === undefined) continue;
            answerHeaders.set(
              name,
              Array.isArray(value) ? value.join(", ") : value,
            );
          }
          resolve({
            status: response.statusCode ?? 0,
            headers: answerHeaders,
            text: Buffer.concat(chunks).toString("utf8"),
          });
        });
      });
      request.setTimeout(
        this.config.timeoutMs ?? 30_000,
        () => request.destroy(new Error("the store went silent")),
      );
      request.on("error", reject);
      writePieces(request, pieces).then(
        () => request.end(),
        (error) => request.destroy(error),
      );
    });
  }
}

/** Writes `pieces` to `request`, waiting for it to drain when its buffer is full. */
async function writePieces(
  request: http.ClientRequest,
  pieces: readonly Uint8Array[],
): Promise<void> {
  for (const piece of pieces) {
    if (request.destroyed) return;
    if (!request.write(piece)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          request.off("drain", done);
          request.off("close", done);
          resolve();
        };
        request.on("drain", done);
        request.on("close", done);
      });
    }
  }
}

/** The body as a list of pieces. */
function piecesOf(body: S3Request["body"]): readonly Uint8Array[] {
  if (body === undefined) return [];
  return body instanceof Uint8Array ? [body] : body;
}

function concat(pieces: readonly Uint8Array[], length: number): Uint8Array {
  if (pieces.length === 1) return pieces[0]!;
  const whole = new Uint8Array(length);
  let at = 0;
  for (const piece of pieces) {
    whole.set(piece, at);
    at += piece.length;
  }
  return whole;
}

/** `key` for a URL path: each component percent-encoded, RFC 3986 style. */
export function encodeKey(key: string): string {
  return key.split("/").map((part) =>
    encodeURIComponent(part).replace(
      /[!'()*]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    )
  ).join("/");
}

/** `METHOD key` of a request, for messages. */
function what(request: S3Request): string {
  return request.key === undefined ? "the bucket" : JSON.stringify(request.key);
}

/**
 * The {@linkcode StoreError} of an answer that is not one of `expected`:
 * the `<Error><Code>` of its body when it has one (HEAD answers have none).
 */
export function answerError(
  action: string,
  answer: S3Answer,
): StoreError {
  const code = tagText(answer.text, "Code") ?? "";
  const message = tagText(answer.text, "Message");
  return new StoreError(
    `Cannot ${action}: the store answered ${answer.status}${
      code ? ` ${code}` : ""
    }${message ? ` (${message})` : ""}`,
    answer.status,
    code,
  );
}
