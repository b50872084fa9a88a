/**
 * A server's background work: removing what abandoned uploads left every so
 * often (`Store.sweep`) and, when asked, the store check at start
 * (`Store.check`). Neither holds up serving; both stop with the server.
 *
 * @module
 */

import type { Logger } from "../base/log.ts";
import type { Store } from "../store.ts";

/** Longest pause between two sweeps, whatever the time to live. */
const MAX_SWEEP_INTERVAL_MS = 60 * 60 * 1000;

/** Options for {@linkcode startHousekeeping}. */
export interface HousekeepingOptions {
  /** Part files not written to for this long are removed. */
  partTtlMs: number;
  /** Run the store check once at start. */
  verify: boolean;
  /** Where results are logged. */
  log: Logger;
}

/** Background work under way; `stop()` ends it and waits for it. */
export interface Housekeeping {
  /** Stops the timers and waits for a sweep or check in progress. */
  stop(): Promise<void>;
}

/** Starts sweeping (at once, then every quarter of the time to live, at most hourly) and the store check. */
export function startHousekeeping(
  store: Store,
  options: HousekeepingOptions,
): Housekeeping {
  const { log } = options;
  const stopping = new AbortController();
  const running = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>) => {
    const quiet = work.catch((error) =>
      log.warn(`Background work failed: ${(error as Error).message}`)
    );
    running.add(quiet);
    quiet.finally(() => running.delete(quiet));
  };
  const sweep = () => {
    track(
      store.sweep(options.partTtlMs, log).then((report) => {
        if (report.files > 0) {
          log.info(
            `Removed ${report.files} abandoned file(s), ${report.bytes} bytes`,
          );
        }
      }),
    );
  };
  sweep();
  const timer = setInterval(
    sweep,
    Math.min(MAX_SWEEP_INTERVAL_MS, Math.max(1000, options.partTtlMs / 4)),
  );
  if (options.verify) {
    track(store.check(log, stopping.signal));
  }
  return {
    async stop() {
      clearInterval(timer);
      stopping.abort();
      await Promise.all([...running]);
    },
  };
}
