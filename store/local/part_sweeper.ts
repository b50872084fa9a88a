/**
 * Removing what abandoned uploads leave: part files (with their resume
 * states) not written to for `--part-ttl`, and temporary files. A part file
 * still claimed by a transfer, in this process or another, is never
 * touched; one that is not is claimed before it is removed, so a transfer
 * starting meanwhile either gets it first or finds it gone.
 *
 * @module
 */

import type { Logger } from "../../base/log.ts";
import { exists } from "../../base/paths.ts";
import { removeIfPresent } from "../../engine/atomic_file.ts";
import { claimPart } from "../../engine/part_file.ts";
import {
  PART_SUFFIX,
  STATE_SUFFIX,
  STATE_TEMP_SUFFIX,
} from "../../protocol/names.ts";
import type { SweepReport } from "../interface.ts";
import type { Catalog } from "./catalog.ts";
import { UploadRecords } from "./upload_records.ts";

/**
 * Removes leftovers older than `ttlMs` (by mtime): part files nobody
 * holds, with their states, and stray states and temporaries.
 *
 * @example
 * ```ts
 * import { Catalog } from "./catalog.ts";
 * import { Logger } from "../../base/log.ts";
 * import { sweepParts } from "./part_sweeper.ts";
 * await sweepParts(new Catalog("./ftv-data"), 86_400_000, new Logger("sweep"));
 * ```
 */
export async function sweepParts(
  catalog: Catalog,
  ttlMs: number,
  log: Logger,
): Promise<SweepReport> {
  const report: SweepReport = { files: 0, bytes: 0 };
  const cutoff = Date.now() - ttlMs;
  for (const { path, info } of await catalog.leftovers()) {
    if ((info.mtime?.getTime() ?? 0) > cutoff) continue;
    if (path.endsWith(PART_SUFFIX)) {
      if (await removeUnclaimedPart(path)) {
        log.info(
          `Removed abandoned part file ${path} (${info.size} bytes, last written ${info.mtime?.toISOString()})`,
        );
        report.files++;
        report.bytes += info.size;
      }
    } else if (!(await exists(partOf(path)))) {
      await removeIfPresent(path);
      report.files++;
      report.bytes += info.size;
    }
  }
  await sweepUploadRecords(catalog, cutoff, report);
  return report;
}

/**
 * Removes the records of resumable HTTP uploads that expired: created
 * before the cutoff, with no part file written since (the loop above
 * removed old part files nobody holds).
 */
async function sweepUploadRecords(
  catalog: Catalog,
  cutoff: number,
  report: SweepReport,
): Promise<void> {
  const records = new UploadRecords(catalog.dir);
  for (const { record } of await records.all()) {
    if (record.createdMs > cutoff) continue;
    const part = catalog.pathOf(record.name) + PART_SUFFIX;
    if (await exists(part)) {
      const written = (await Deno.lstat(part)).mtime?.getTime() ?? 0;
      if (written > cutoff || !(await removeUnclaimedPart(part))) continue;
    }
    report.bytes += await records.sizeOf(record.id);
    await records.remove(record.id);
    report.files++;
  }
}

/** Claims the part file at `path` and removes it with its state; false when a transfer holds it. */
async function removeUnclaimedPart(path: string): Promise<boolean> {
  const claimed = await claimPart(path);
  if (!claimed) return false;
  try {
    const base = path.slice(0, -PART_SUFFIX.length);
    await removeIfPresent(path);
    await removeIfPresent(base + STATE_SUFFIX);
    await removeIfPresent(base + STATE_TEMP_SUFFIX);
    return true;
  } finally {
    claimed.file.close();
  }
}

/** The part file a state or temporary belongs to (a temporary of ftv's own has none). */
function partOf(path: string): string {
  for (const suffix of [STATE_TEMP_SUFFIX, STATE_SUFFIX]) {
    if (path.endsWith(suffix)) {
      return path.slice(0, -suffix.length) + PART_SUFFIX;
    }
  }
  return path + PART_SUFFIX; // Never exists: the temporary goes.
}
