/**
 * Removing what abandoned uploads left in an S3 store, by any server: the
 * resume records (with their multipart uploads and tails) not written to
 * for the part time to live and whose lease has run out; multipart uploads
 * and staging objects under `.ftv/staging/` that old and named by no record
 * (a server that died between creating one and recording it, or between
 * completing one and copying it); and HTTP upload records that old whose
 * upload has no record left.
 *
 * @module
 */

import type { Logger } from "../../base/log.ts";
import type { SweepReport } from "../interface.ts";
import type { Bucket } from "./bucket.ts";
import { dropUpload } from "./claim.ts";
import type { HttpRecords } from "./http_records.ts";
import type { ResumeRecords } from "./resume_records.ts";

/** What a sweep works on. */
export interface SweepTarget {
  bucket: Bucket;
  records: ResumeRecords;
  http: HttpRecords;
  stagingFolder: string;
}

/** Removes what uploads abandoned for `ttlMs` left; see the module docs. */
export async function sweepS3(
  target: SweepTarget,
  ttlMs: number,
  log: Logger,
): Promise<SweepReport> {
  const { bucket, records, http, stagingFolder } = target;
  const report: SweepReport = { files: 0, bytes: 0 };
  const now = Date.now();
  const cutoff = now - ttlMs;
  const kept = new Set<string>(); // Upload ids, staging and tail keys still named.
  const names = new Set<string>();
  for await (const { name, record } of records.all()) {
    if (record.updatedMs < cutoff && record.leaseUntil < now) {
      await dropUpload(bucket, record, log);
      await records.remove(name);
      log.info(
        `Removed the abandoned upload of ${name} (last written ${
          new Date(record.updatedMs).toISOString()
        })`,
      );
      report.files++;
      continue;
    }
    names.add(name);
    kept.add(record.uploadId).add(record.staging);
    if (record.tail) kept.add(record.tail.key);
  }
  for (const pending of await bucket.pendingUploads(stagingFolder)) {
    if (pending.initiatedMs >= cutoff || kept.has(pending.uploadId)) continue;
    await bucket.abort(pending.key, pending.uploadId);
    report.files++;
  }
  for await (const item of bucket.list(stagingFolder)) {
    if (item.lastModifiedMs >= cutoff || kept.has(item.key)) continue;
    await bucket.delete(item.key);
    report.files++;
    report.bytes += item.size;
  }
  for (const { record } of await http.all()) {
    if (record.createdMs >= cutoff || names.has(record.name)) continue;
    await http.remove(record.id);
    report.files++;
  }
  return report;
}
