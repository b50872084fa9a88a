/**
 * Ctrl-C during a transfer: the first SIGINT aborts it (the library closes
 * the connection; what arrived stays for a resume), the progress bar is
 * cleared, and the command ends with one line saying where it stopped, exit
 * code 130. A second SIGINT exits at once.
 *
 * @module
 */

import { formatBytes } from "../base/bytes.ts";
import { EXIT, InterruptedError } from "../base/errors.ts";
import type { ProgressEvent } from "../engine/transfer.ts";
import type { ProgressReporter } from "./progress.ts";

/**
 * Runs `transfer` of `what` (a path or name, for a stop before any
 * progress) with a signal that SIGINT aborts; stopped, it rejects with an
 * {@linkcode InterruptedError} saying how far `progress` got.
 */
export async function interruptible<T>(
  progress: ProgressReporter,
  what: string,
  transfer: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const { signal } = controller;
  const onInterrupt = () => {
    if (signal.aborted) Deno.exit(EXIT.interrupted);
    progress.stop();
    controller.abort(new InterruptedError(stoppedAt(progress.last, what)));
  };
  Deno.addSignalListener("SIGINT", onInterrupt);
  try {
    return await transfer(signal);
  } catch (error) {
    // Whatever the abort made the transfer throw, the user stopped it.
    throw signal.aborted ? signal.reason : error;
  } finally {
    Deno.removeSignalListener("SIGINT", onInterrupt);
  }
}

/** `stopped at 312.0 MiB of 1.0 GiB of big.iso; run the same command again to resume` */
export function stoppedAt(
  last: ProgressEvent | undefined,
  what: string,
): string {
  const where = last === undefined
    ? `before any of ${what} moved`
    : `at ${formatBytes(last.bytes)} of ${
      formatBytes(last.total)
    } of ${last.name}`;
  return `stopped ${where}; run the same command again to resume`;
}
