/**
 * The version ftv reports in its hello and `--version`.
 *
 * @module
 */

/** ftv's release version. */
export const VERSION = "0.1.0";
/** How ftv names itself to peers. */
export const AGENT = `ftv/${VERSION}`;
