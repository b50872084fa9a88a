/**
 * What every part of the bench shares: where it listens, its units, its one
 * error type and a few small file and text helpers.
 *
 * @module
 */

export { basename, exists } from "../../base/paths.ts";

/** Everything the bench starts listens here only. */
export const HOST = "127.0.0.1";
/** Rates are printed in MB/s: 10^6 bytes per second. */
export const MB = 1e6;
export const MiB = 1024 * 1024;

/** A failure the bench explains in one line. */
export class BenchError extends Error {
  /** An error whose message is printed as it is. */
  constructor(message: string) {
    super(message);
    this.name = "BenchError";
  }
}

/** One line for `error`: a {@linkcode BenchError}'s message as it is. */
export function describe(error: unknown): string {
  if (error instanceof BenchError) return error.message;
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/** Last non-empty line of `text`, for one-line error messages. */
export function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  return lines.at(-1) ?? "(no output)";
}

/** `n` with `digits` decimals. */
export const fixed = (n: number, digits = 0): string => n.toFixed(digits);

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Deletes `path` and all below it; one already gone is no error. */
export async function remove(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
