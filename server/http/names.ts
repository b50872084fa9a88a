/**
 * Names in URLs: `/files/<name>` is percent-decoded once, then faces
 * exactly the ftv/1 name rules (`pathRefusal`), so `%2F`, `%2e%2e`,
 * backslashes, NUL and over-long names are refused as they are on ftv/1.
 * Also the `Content-Disposition` a download carries (RFC 6266 and 8187).
 *
 * @module
 */

import { ERROR_CODE, type Outcome, refusal } from "../../base/errors.ts";
import { pathRefusal } from "../../protocol/names.ts";

/** The stored name `encoded` (a path after `/files/`) names, or why it may not be used. */
export function nameOf(encoded: string): Outcome<string> {
  let name: string;
  try {
    name = decodeURIComponent(encoded);
  } catch {
    return {
      ok: false,
      refusal: refusal(
        ERROR_CODE.badName,
        `${JSON.stringify(encoded)} is not percent-encoded UTF-8`,
      ),
    };
  }
  const refused = pathRefusal(name);
  return refused ? { ok: false, refusal: refused } : { ok: true, value: name };
}

/** `attachment` with the last component of `name`: an ASCII fallback and `filename*` for any name. */
export function contentDisposition(name: string): string {
  const base = name.slice(name.lastIndexOf("/") + 1);
  const ascii = base.replace(/[^\x20-\x7e]|["\\%]/g, "_");
  const encoded = encodeURIComponent(base).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

const TYPES: Record<string, string> = {
  txt: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  html: "text/html; charset=utf-8",
  css: "text/css",
  js: "text/javascript",
  json: "application/json",
  csv: "text/csv",
  xml: "application/xml",
  pdf: "application/pdf",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  svg: "image/svg+xml",
  mp4: "video/mp4",
  webm: "video/webm",
  mp3: "audio/mpeg",
  zip: "application/zip",
  gz: "application/gzip",
  tar: "application/x-tar",
  zst: "application/zstd",
  iso: "application/x-iso9660-image",
};

/** The content type of a stored file, by its extension. */
export function contentType(name: string): string {
  const dot = name.lastIndexOf(".");
  const extension = dot > name.lastIndexOf("/")
    ? name.slice(dot + 1).toLowerCase()
    : "";
  return TYPES[extension] ?? "application/octet-stream";
}
