/**
 * What must still hold after a fuzz: a well-behaved client gets a file
 * through verified, nothing changed outside the server's folder, and the
 * folder holds only legal names.
 *
 * @module
 */

import { FtvClient } from "../../client.ts";
import { hashFile } from "../../engine/digest.ts";
import { Logger } from "../../base/log.ts";
import {
  META_DIR,
  nameRefusal,
  PART_SUFFIX,
  STATE_SUFFIX,
} from "../../protocol/names.ts";

/** What {@linkcode verifyGoodClient} moved. */
export interface GoodClientResult {
  sha256: string;
  bytes: number;
}

/**
 * Uploads a random file as a well-behaved client, downloads it again and
 * checks all three digests agree; throws when anything differs.
 */
export async function verifyGoodClient(
  port: number,
  workDir: string,
  options: { host?: string; bytes?: number; log?: Logger } = {},
): Promise<GoodClientResult> {
  const bytes = options.bytes ?? 100_003;
  const source = `${workDir}/good-client.bin`;
  const copy = `${workDir}/good-client.copy`;
  const data = new Uint8Array(bytes);
  for (let at = 0; at < bytes; at += 65_536) {
    crypto.getRandomValues(data.subarray(at, Math.min(bytes, at + 65_536)));
  }
  await Deno.writeFile(source, data);
  await Deno.remove(copy).catch(() => undefined);
  const expected = await hashFile(source);
  using client = await FtvClient.connect({
    host: options.host ?? "127.0.0.1",
    port,
    timeoutMs: 10_000,
    log: options.log ?? new Logger("FileTransferClient", { level: "ERROR" }),
  });
  const sent = await client.send(source, { as: "good-client.bin" });
  const got = await client.get("good-client.bin", { out: copy });
  const actual = await hashFile(copy);
  if (
    sent.sha256 !== expected || got.sha256 !== expected || actual !== expected
  ) {
    throw new Error(
      `Cannot verify the good client: sent ${expected}, server ${sent.sha256}, got ${got.sha256}, on disk ${actual}`,
    );
  }
  return { sha256: expected, bytes };
}

/**
 * Files under `root` (recursively, as `path size`), leaving out `skip`: a
 * snapshot to compare before and after, to prove nothing landed outside.
 */
export async function snapshotTree(
  root: string,
  skip: string,
): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, depth: number) => {
    if (depth > 16) return;
    for await (const entry of Deno.readDir(dir)) {
      const path = `${dir}/${entry.name}`;
      if (path === skip) continue;
      const info = await Deno.lstat(path);
      out.push(`${path} ${info.isDirectory ? "dir" : info.size}`);
      if (info.isDirectory) await walk(path, depth + 1);
    }
  };
  await walk(root, 0);
  return out.sort();
}

/**
 * Entries of a server folder that should not be there: anything that is not
 * a regular file with a legal name (or its part or state file), or the
 * bookkeeping folder.
 */
export async function strayEntries(dir: string): Promise<string[]> {
  const stray: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.name === META_DIR && entry.isDirectory) continue;
    const base = entry.name.endsWith(PART_SUFFIX)
      ? entry.name.slice(0, -PART_SUFFIX.length)
      : entry.name.endsWith(STATE_SUFFIX)
      ? entry.name.slice(0, -STATE_SUFFIX.length)
      : entry.name;
    if (!entry.isFile || nameRefusal(base)) stray.push(entry.name);
  }
  return stray.sort();
}
