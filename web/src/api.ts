/// <reference lib="dom" />
/**
 * The HTTP front door as the page calls it: what the server is
 * (`/api/info`), the listing (`/api/list`), a stored file's digest
 * (`HEAD /files/<name>`), the token (kept in session storage, sent as
 * `Authorization: Bearer`; never a cookie, so another site cannot ride on
 * it) and download links, signed with the token when the server has one
 * (see `server/http/signed_link.ts`), since a browser's download manager
 * sends no header of ours.
 *
 * @module
 */

import { createHMAC, createSHA256 } from "hash-wasm";

/** A stored file, as `/api/list` gives it. */
export interface StoredFile {
  name: string;
  size: number;
  sha256: string;
  mtimeMs: number;
  damaged?: boolean;
}

/** A stored folder. */
export interface StoredDir {
  name: string;
  mtimeMs: number;
}

/** What `/api/list` answers. */
export interface Listing {
  files: StoredFile[];
  dirs: StoredDir[];
}

/** What `/api/info` answers. */
export interface ServerInfo {
  version: string;
  /** Requests need the token. */
  token: boolean;
  chunkSize: number;
  maxFileSize?: number;
}

/** A refusal from the server: its status, code and `Cannot ...` detail. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** Whether the token was missing or wrong. */
  get unauthorized(): boolean {
    return this.status === 401;
  }
}

const TOKEN_KEY = "ftv.token";

/** The token this tab logged in with, if any. */
export function savedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

/** Keeps `token` for this tab (or forgets it). */
export function saveToken(token: string | undefined): void {
  if (token === undefined) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, token);
}

/** The header fields every request of the page carries. */
export function authHeaders(
  token = savedToken(),
): Record<string, string> {
  return token === undefined ? {} : { Authorization: `Bearer ${token}` };
}

/** The header fields of a tus request (version and token). */
export function tusHeaders(): Record<string, string> {
  return { "Tus-Resumable": "1.0.0", ...authHeaders() };
}

/** The {@linkcode ApiError} a failed response carries (its problem body). */
export async function errorOf(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let detail = `${response.status} ${response.statusText}`.trim();
  try {
    const problem = await response.json();
    if (typeof problem.code === "string") code = problem.code;
    if (typeof problem.detail === "string") detail = problem.detail;
  } catch {
    // Not a problem body (a proxy's page): the status says enough.
  }
  return new ApiError(response.status, code, detail);
}

/** What the server is and whether it needs a token. */
export async function serverInfo(): Promise<ServerInfo> {
  const response = await fetch("/api/info", { cache: "no-store" });
  if (!response.ok) throw await errorOf(response);
  return await response.json();
}

/** Every stored file and folder; with `token`, tries that token instead. */
export async function listStore(token = savedToken()): Promise<Listing> {
  const response = await fetch("/api/list", {
    headers: authHeaders(token),
    cache: "no-store",
  });
  if (!response.ok) throw await errorOf(response);
  const listing = await response.json();
  return { files: listing.files ?? [], dirs: listing.dirs ?? [] };
}

/** `/files/<name>`, each component percent-encoded. */
export function filePath(name: string): string {
  return `/files/${name.split("/").map(encodeURIComponent).join("/")}`;
}

/** The hex SHA-256 a `Repr-Digest` field gives, if it gives one. */
export function digestOfField(value: string | null): string | undefined {
  const match = /sha-256=:([A-Za-z0-9+/=]+):/.exec(value ?? "");
  if (!match) return undefined;
  const bytes = atob(match[1]!);
  if (bytes.length !== 32) return undefined;
  return Array.from(bytes, (c) => c.charCodeAt(0).toString(16).padStart(2, "0"))
    .join("");
}

/** `sha-256=:BASE64:` for a hex SHA-256. */
export function reprDigest(sha256: string): string {
  const bytes = sha256.match(/../g)!.map((h) => parseInt(h, 16));
  return `sha-256=:${btoa(String.fromCharCode(...bytes))}:`;
}

/** The stored digest of `name` (`HEAD /files/<name>`), `undefined` when not stored. */
export async function storedDigest(name: string): Promise<string | undefined> {
  const response = await fetch(filePath(name), {
    method: "HEAD",
    headers: authHeaders(),
    cache: "no-store",
  });
  if (response.status === 404) return undefined;
  if (!response.ok) throw await errorOf(response);
  return digestOfField(response.headers.get("repr-digest"));
}

/** How long a signed link lasts, in seconds. */
const LINK_LIFETIME = 24 * 3600;

/**
 * A download link to `name`: plain without a token; with one, signed for
 * that file until a day from the next full hour (so a listing redrawn
 * within the hour keeps the same links).
 */
export async function downloadLink(name: string): Promise<string> {
  const token = savedToken();
  const path = filePath(name);
  if (token === undefined) return path;
  const expires = Math.ceil(Date.now() / 3_600_000) * 3600 + LINK_LIFETIME;
  const hmac = await createHMAC(createSHA256(), token);
  hmac.init();
  hmac.update(`ftv-link\n${expires}\n${name}`);
  return `${path}?exp=${expires}&sig=${hmac.digest("hex")}`;
}
