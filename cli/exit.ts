/**
 * How a failed command ends: one `ftv: ...` line on stderr, never a stack
 * trace, and an exit code from `base/errors.ts` (1 failed, 2 usage, 3 auth,
 * 130 stopped by Ctrl-C).
 * Only a {@linkcode UsageError}, thrown by the command line's own checks,
 * is a usage error: an error from the library is never one.
 *
 * @module
 */

import { EXIT, exitCodeOf } from "../base/errors.ts";
import { printable } from "../base/printable.ts";

/** A mistake in the command line, found by the command line: exit code 2. */
export class UsageError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** How a command that threw ends: its exit code and the line to print. */
export interface Failure {
  /** The process exit code. */
  code: number;
  /** One line for stderr, starting `ftv: `. */
  line: string;
}

/**
 * The exit code and message for `error`, thrown by `command` (when it is a
 * known command, a usage error points at its help).
 *
 * @example
 * ```ts
 * import { failureOf, UsageError } from "./exit.ts";
 * failureOf(new UsageError("send needs a PATH"), "send");
 * // { code: 2, line: "ftv: send needs a PATH (see 'ftv send --help')" }
 * ```
 */
export function failureOf(error: unknown, command?: string): Failure {
  if (error instanceof UsageError) {
    const hint = command === undefined ? "" : ` ${command}`;
    return {
      code: EXIT.usage,
      line: `ftv: ${printable(error.message)} (see 'ftv${hint} --help')`,
    };
  }
  // The message may quote the server: its controls are shown, not obeyed.
  return {
    code: exitCodeOf(error),
    line: `ftv: ${printable(describe(error))}`,
  };
}

/** Why something failed, in its own words, without a stack trace. */
export function describe(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) {
    return `Cannot open file: ${error.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}
