/**
 * Which file names a peer may use. A name from the wire is one path
 * component, so it can only ever land directly inside the server's folder.
 *
 * @module
 */

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

const encoder = new TextEncoder();

/** Why `name` may not be stored, or `undefined` when it may. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return "name is empty";
  if (encoder.encode(name).length > MAX_NAME_BYTES) {
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

/** Throws a `RangeError` naming the problem when `name` may not be stored. */
export function checkName(name: string): string {
  const problem = nameProblem(name);
  if (problem) {
    throw new RangeError(`Cannot use name ${JSON.stringify(name)}: ${problem}`);
  }
  return name;
}
