/**
 * The store check of an S3 store (`server --verify`): every stored object
 * read whole and hashed, in the background, and compared with the digest in
 * its metadata. The service keeps its own checksums and replicas; this
 * checks what ftv promised, end to end, and names what differs in the log
 * (ftv keeps no parity in S3, so there is nothing to rebuild from here).
 *
 * @module
 */

import { secondsSince } from "../../base/clock.ts";
import type { Logger } from "../../base/log.ts";
import {
  newCheckReport,
  type Store,
  type StoreCheckReport,
} from "../interface.ts";

/** Hashes every file of `store` again; stops early when `signal` aborts. */
export async function checkS3(
  store: Store,
  log: Logger,
  signal?: AbortSignal,
): Promise<StoreCheckReport> {
  const started = performance.now();
  const report = newCheckReport();
  log.info("Store check: re-hashing every stored object");
  for (const { name } of (await store.listTree()).files) {
    if (signal?.aborted) break;
    const found = await store.recheck(name);
    if (found.kind === "missing") continue;
    report.files++;
    report.bytes += found.size;
    if (found.kind === "damaged") {
      report.damaged.push(name);
      log.error(
        `Store check: ${name} is damaged: its bytes have SHA-256 ${found.actual}, not ${found.expected} as stored`,
      );
    } else if (found.kind === "intact") report.intact++;
    else report.recorded++;
  }
  report.seconds = secondsSince(started);
  log.info(
    `Store check done: ${report.files} object(s), ${report.bytes} bytes in ${
      report.seconds.toFixed(1)
    } s: ${report.intact} intact, ${report.recorded} without a digest, ${report.damaged.length} damaged`,
  );
  return report;
}
