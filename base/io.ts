/**
 * Where a command writes: results to one stream, messages to another. The
 * command line and the demo write through an {@linkcode Io} so tests can
 * capture both.
 *
 * @module
 */

/**
 * Where a command writes its result and messages; tests capture them.
 *
 * @example
 * ```ts
 * import type { Io } from "./io.ts";
 * const lines: string[] = [];
 * const io: Io = { out: (text) => lines.push(text), err: (text) => lines.push(text) };
 * io.out("hello");
 * ```
 */
export interface Io {
  /** Writes a line of results (standard output). */
  out(text: string): void;
  /** Writes a line of messages (standard error). */
  err(text: string): void;
}

const encoder = new TextEncoder();

/** Standard output and standard error, a line at a time. */
export const STDIO: Io = {
  out: (text) => Deno.stdout.writeSync(encoder.encode(text + "\n")),
  err: (text) => Deno.stderr.writeSync(encoder.encode(text + "\n")),
};
