/**
 * Which file names a peer may use. A stored name is a relative path of
 * components joined by "/" (`photos/2024/a.jpg`); every component passes the
 * single-name rules, so a name can only ever land inside the server's folder.
 *
 * @module
 */

import { ERROR_CODE, type Refusal, refusal } from "../base/errors.ts";

/** Suffix of a file still being received. */
export const PART_SUFFIX = ".ftv-part";
/** Suffix of the resume state kept beside a part file. */
export const STATE_SUFFIX = ".ftv-state";
/** Folder inside a server's data folder for ftv's own bookkeeping. */
export const META_DIR = ".ftv";
/** Suffix of the state file while it is written, before its atomic rename. */
export const STATE_TEMP_SUFFIX = STATE_SUFFIX + ".tmp";
/**
 * Longest name accepted, in UTF-8 bytes: the usual file system limit (255)
 * less the longest suffix, so `<name>.ftv-state.tmp` still fits.
 */
export const MAX_NAME_BYTES = 255 - STATE_TEMP_SUFFIX.length;
/** Longest relative path accepted, in UTF-8 bytes (Linux's `PATH_MAX`). */
export const MAX_PATH_BYTES = 4096;
/** Most components a relative path may have. */
export const MAX_PATH_DEPTH = 64;

const encoder = new TextEncoder();

/**
 * Why `name` (one path component) may not be stored, as a `bad_name`
 * refusal, or `undefined` when it may.
 *
 * @example
 * ```ts
 * import { nameRefusal } from "./names.ts";
 * console.log(nameRefusal("..")?.reason); // name is a relative path
 * ```
 */
export function nameRefusal(name: string): Refusal | undefined {
  const reason = nameReason(name);
  return reason === undefined ? undefined : refusal(ERROR_CODE.badName, reason);
}

function nameReason(name: string): string | undefined {
  if (name.length === 0) return "name is empty";
  // A UTF-16 code unit takes at most 3 UTF-8 bytes: most names need no encoding.
  if (
    name.length * 3 > MAX_NAME_BYTES &&
    encoder.encode(name).length > MAX_NAME_BYTES
  ) {
    return `name is longer than ${MAX_NAME_BYTES} bytes`;
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) {
    return "name contains a control character";
  }
  // A lone surrogate becomes U+FFFD on disk, so two such names share a file.
  if (!name.isWellFormed()) return "name is not well-formed Unicode";
  if (name.includes("/") || name.includes("\\")) {
    return "name contains a path separator";
  }
  if (name === "." || name === "..") return "name is a relative path";
  if (/^[A-Za-z]:/.test(name)) return "name starts with a drive letter";
  if (name === META_DIR) return `name "${META_DIR}" is reserved`;
  if (
    name.endsWith(PART_SUFFIX) || name.endsWith(STATE_SUFFIX) ||
    name.endsWith(STATE_TEMP_SUFFIX)
  ) {
    return "name ends with a reserved suffix";
  }
  return undefined;
}

/**
 * Why the relative path `path` may not be stored, or `undefined` when it
 * may: it is split on "/" and every component must pass
 * {@linkcode nameRefusal}, so `a//b`, `a/./b`, `a/../b`, `/abs` and `a/`
 * are refused; the whole is capped at {@linkcode MAX_PATH_BYTES} bytes and
 * {@linkcode MAX_PATH_DEPTH} components.
 */
export function pathRefusal(path: string): Refusal | undefined {
  const reason = pathReason(path);
  return reason === undefined ? undefined : refusal(ERROR_CODE.badName, reason);
}

function pathReason(path: string): string | undefined {
  if (path.length === 0) return "name is empty";
  if (
    path.length * 3 > MAX_PATH_BYTES &&
    encoder.encode(path).length > MAX_PATH_BYTES
  ) {
    return `path is longer than ${MAX_PATH_BYTES} bytes`;
  }
  if (path.startsWith("/")) return "path is absolute";
  const components = path.split("/");
  if (components.length > MAX_PATH_DEPTH) {
    return `path is deeper than ${MAX_PATH_DEPTH} components`;
  }
  if (components.length === 1) return nameReason(path);
  for (const component of components) {
    const reason = nameReason(component);
    if (reason) return `component ${JSON.stringify(component)}: ${reason}`;
  }
  return undefined;
}

/** Longest extension {@linkcode fitName} keeps whole, in UTF-8 bytes. */
const KEPT_EXTENSION_BYTES = 16;

/**
 * `name` cut to at most `maxBytes` UTF-8 bytes, on a character boundary,
 * keeping a short extension: for local names made from stored ones, such
 * as the round trip's `received_<name>`, whose part and state files must
 * still fit the file system's 255 bytes.
 *
 * @example
 * ```ts
 * import { fitName } from "./names.ts";
 * console.log(fitName("é".repeat(200) + ".iso", 11)); // ééé.iso (10 bytes)
 * ```
 */
export function fitName(
  name: string,
  maxBytes: number = MAX_NAME_BYTES,
): string {
  if (encoder.encode(name).length <= maxBytes) return name;
  const dot = name.lastIndexOf(".");
  const extension = dot > 0 &&
      encoder.encode(name.slice(dot)).length <= KEPT_EXTENSION_BYTES
    ? name.slice(dot)
    : "";
  let room = maxBytes - encoder.encode(extension).length;
  let kept = "";
  for (const character of name.slice(0, name.length - extension.length)) {
    room -= encoder.encode(character).length;
    if (room < 0) break;
    kept += character;
  }
  return kept + extension;
}

/** The relative paths of the folders holding `path`, outermost first: `a`, `a/b` for `a/b/c`. */
export function parentsOf(path: string): string[] {
  const parents: string[] = [];
  for (let at = path.indexOf("/"); at !== -1; at = path.indexOf("/", at + 1)) {
    parents.push(path.slice(0, at));
  }
  return parents;
}
