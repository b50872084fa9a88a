/**
 * The store check (`server --verify`): every stored file hashed again and
 * compared with the digest it was stored with, in the background while the
 * server serves. A file whose bytes changed without its size or mtime
 * changing has rotted: its chunks are rebuilt from its parity when it has
 * some (each repair logged), and the whole file is checked again; what
 * cannot be rebuilt is marked damaged (listed so, refused on `get` until
 * sent again) and named in the log. Files without parity get it, when the
 * server keeps parity.
 *
 * @module
 */

import type { Logger } from "../../base/log.ts";
import { secondsSince } from "../../base/clock.ts";
import { newCheckReport, type StoreCheckReport } from "../interface.ts";
import type { Catalog } from "./catalog.ts";
import type { ParityStore } from "./parity_store.ts";

/**
 * Hashes every stored file again, one at a time; stops early when `signal`
 * aborts. Logs each damaged file and a summary.
 *
 * @example
 * ```ts
 * import { Catalog } from "./catalog.ts";
 * import { Logger } from "../../base/log.ts";
 * import { checkStore } from "./store_check.ts";
 * import { ParityStore } from "./parity_store.ts";
 * const dir = "./ftv-data";
 * const report = await checkStore(
 *   new Catalog(dir),
 *   new ParityStore(dir, undefined, 1 << 20),
 *   new Logger("check"),
 * );
 * console.log(report.damaged);
 * ```
 */
export async function checkStore(
  catalog: Catalog,
  parity: ParityStore,
  log: Logger,
  signal?: AbortSignal,
): Promise<StoreCheckReport> {
  const started = performance.now();
  const report = newCheckReport();
  log.info("Store check: re-hashing every stored file");
  for (const name of await catalog.fileNames()) {
    if (signal?.aborted) break;
    let found = await catalog.recheck(name);
    if (found.kind === "missing") continue;
    report.files++;
    if (found.kind === "damaged") {
      const expected = found.expected;
      if (await parity.repair(name, catalog.pathOf(name), expected, log)) {
        found = await catalog.recheck(name, expected);
        if (found.kind === "intact") {
          report.repaired.push(name);
          log.info(`Store check: ${name} repaired from parity and verified`);
          continue;
        }
      }
    }
    if (found.kind === "missing") continue;
    if (found.kind === "damaged") {
      report.damaged.push(name);
      log.error(
        `Store check: ${name} is damaged: its bytes have SHA-256 ${found.actual}, not ${found.expected} as stored; it is refused until sent again`,
      );
    } else {
      if (found.kind === "intact") report.intact++;
      else report.recorded++;
      if (await addParity(parity, catalog, name, found.sha256, found.size)) {
        report.parityAdded++;
      }
    }
    report.bytes += found.size;
  }
  await catalog.flush();
  report.seconds = secondsSince(started);
  log.info(
    `Store check done: ${report.files} file(s), ${report.bytes} bytes in ${
      report.seconds.toFixed(1)
    } s: ${report.intact} intact, ${report.recorded} recorded, ${report.repaired.length} repaired from parity, ${report.damaged.length} damaged, ${report.parityAdded} given parity`,
  );
  return report;
}

/** Gives `name` parity when the server keeps parity and it has none for this digest. */
async function addParity(
  parity: ParityStore,
  catalog: Catalog,
  name: string,
  sha256: string,
  size: number,
): Promise<boolean> {
  if (!parity.shape || await parity.open(name, sha256)) return false;
  await parity.add(name, catalog.pathOf(name), sha256, size);
  return true;
}
