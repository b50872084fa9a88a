/**
 * The store check (`server --verify`): every stored file hashed again and
 * compared with the digest it was stored with, in the background while the
 * server serves. A file whose bytes changed without its size or mtime
 * changing has rotted: it is marked damaged (listed so, refused on `get`
 * until sent again) and named in the log.
 *
 * @module
 */

import type { Logger } from "../base/log.ts";
import { secondsSince } from "../base/clock.ts";
import type { Catalog } from "./catalog.ts";

/** What one store check found. */
export interface StoreCheckReport {
  /** Files hashed. */
  files: number;
  /** Their bytes. */
  bytes: number;
  /** Files whose digest was confirmed. */
  intact: number;
  /** Files with no digest on record (new, or changed in size or mtime): hashed and recorded. */
  recorded: number;
  /** Names of the files found damaged. */
  damaged: string[];
  /** Wall-clock seconds. */
  seconds: number;
}

/**
 * Hashes every stored file again, one at a time; stops early when `signal`
 * aborts. Logs each damaged file and a summary.
 *
 * @example
 * ```ts
 * import { Catalog } from "./catalog.ts";
 * import { Logger } from "../base/log.ts";
 * import { checkStore } from "./store_check.ts";
 * const report = await checkStore(new Catalog("./ftv-data"), new Logger("check"));
 * console.log(report.damaged);
 * ```
 */
export async function checkStore(
  catalog: Catalog,
  log: Logger,
  signal?: AbortSignal,
): Promise<StoreCheckReport> {
  const started = performance.now();
  const report: StoreCheckReport = {
    files: 0,
    bytes: 0,
    intact: 0,
    recorded: 0,
    damaged: [],
    seconds: 0,
  };
  log.info("Store check: re-hashing every stored file");
  for (const name of await catalog.fileNames()) {
    if (signal?.aborted) break;
    const found = await catalog.recheck(name);
    if (found.kind === "missing") continue;
    report.files++;
    if (found.kind === "damaged") {
      report.damaged.push(name);
      log.error(
        `Store check: ${name} is damaged: its bytes have SHA-256 ${found.actual}, not ${found.expected} as stored; it is refused until sent again`,
      );
    } else if (found.kind === "intact") report.intact++;
    else report.recorded++;
    report.bytes += found.size;
  }
  await catalog.flush();
  report.seconds = secondsSince(started);
  log.info(
    `Store check done: ${report.files} file(s), ${report.bytes} bytes in ${
      report.seconds.toFixed(1)
    } s: ${report.intact} intact, ${report.recorded} recorded, ${report.damaged.length} damaged`,
  );
  return report;
}
