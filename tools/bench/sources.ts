/**
 * The files the bench moves: random bytes, real text (the machine's C
 * headers) and log-like text, each written once with its SHA-256; and the
 * check of a received copy.
 *
 * @module
 */

import { randomFillSync } from "node:crypto";
import { hashFile } from "../../engine/digest.ts";
import { Rng } from "../../faults/rng.ts";
import { BenchError, MiB } from "./common.ts";

/** Size of the text files of the `send-text` and `send-log` rows. */
export const TEXT_SIZE = 100 * MiB;
/**
 * Where the `send-text` row finds real text: the C headers that every
 * Debian or Ubuntu machine with a compiler has. Without them the row sends
 * the log-like text instead, and says so.
 */
export const TEXT_ROOT = "/usr/include";
/** Seed of the log text's pseudo-random fields, so every bench sends the same text. */
const TEXT_SEED = 20250101;

/** Writes `pieces` one after the other to `path` (made or truncated). */
export async function writePieces(
  path: string,
  pieces: Iterable<Uint8Array>,
): Promise<void> {
  using file = await Deno.create(path);
  for (const piece of pieces) {
    let written = 0;
    while (written < piece.length) {
      written += await file.write(piece.subarray(written));
    }
  }
}

/** `bytes` random bytes, in pieces of up to 16 MiB (one buffer, refilled). */
export function* randomPieces(bytes: number): Generator<Uint8Array> {
  const piece = new Uint8Array(Math.min(bytes, 16 * MiB));
  for (let left = bytes; left > 0; left -= piece.length) {
    const part = piece.subarray(0, Math.min(piece.length, left));
    randomFillSync(part);
    yield part;
  }
}

const LOG_LEVELS = ["INFO", "INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"];
const LOG_SERVICES = ["api", "auth", "billing", "search", "worker"];
const LOG_WORDS = [
  "request",
  "handled",
  "cache",
  "miss",
  "session",
  "opened",
  "closed",
  "retry",
  "upstream",
  "timeout",
  "queue",
  "flushed",
];

/**
 * `bytes` of log-like text, the same every time (seeded): timestamped lines
 * with a level, a service and its pid, a few words, a sequence number, the
 * service's request counter and a latency; the last line is cut where the
 * size is reached.
 */
export function* logTextPieces(bytes: number): Generator<Uint8Array> {
  const rng = new Rng(TEXT_SEED);
  const pick = (list: string[]) => list[rng.int(list.length)]!;
  const encoder = new TextEncoder();
  const requests = LOG_SERVICES.map(() => 0);
  let clock = Date.UTC(2025, 0, 1);
  let seq = 0;
  for (let left = bytes; left > 0;) {
    let text = "";
    while (text.length < MiB) {
      clock += rng.int(40);
      const service = rng.int(LOG_SERVICES.length);
      text += `${new Date(clock).toISOString()} ${pick(LOG_LEVELS)} ${
        LOG_SERVICES[service]
      }[${1000 + service}] ${pick(LOG_WORDS)} ${pick(LOG_WORDS)} ${
        pick(LOG_WORDS)
      } seq=${++seq} requests=${++requests[service]!} ms=${rng.int(1000)}\n`;
    }
    const piece = encoder.encode(text).subarray(0, left);
    left -= piece.length;
    yield piece;
  }
}

/**
 * The text files under `root` (no NUL byte in their first 4 KiB), sorted by
 * path so every bench on a machine sends the same text; none when `root`
 * cannot be read.
 */
export function textFiles(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (entry.isFile && isText(path)) found.push(path);
    }
  };
  walk(root);
  return found.sort();
}

function isText(path: string): boolean {
  try {
    using file = Deno.openSync(path);
    const head = new Uint8Array(4096);
    const got = file.readSync(head) ?? 0;
    return got > 0 && !head.subarray(0, got).includes(0);
  } catch {
    return false;
  }
}

/** `bytes` of the `files` one after the other, from the first again when they run out. */
export function* concatenatedPieces(
  files: string[],
  bytes: number,
): Generator<Uint8Array> {
  for (let left = bytes, index = 0; left > 0; index++) {
    const piece = Deno.readFileSync(files[index % files.length]!)
      .subarray(0, left);
    left -= piece.length;
    yield piece;
  }
}

/** A file the bench wrote, with what a copy of it must hold. */
export interface Source {
  path: string;
  size: number;
  sha256: string;
}

/** The `send-text` row's file, and what text it holds. */
export interface TextSource extends Source {
  kind: string;
}

/** Writes `size` bytes of `pieces` (random by default) to `path`. */
export async function makeSource(
  path: string,
  size: number,
  pieces: (bytes: number) => Iterable<Uint8Array> = randomPieces,
): Promise<Source> {
  await writePieces(path, pieces(size));
  // Hashing reads it back: the file is now in the page cache.
  return { path, size, sha256: await hashFile(path) };
}

/**
 * Checks a received copy: its size always, its SHA-256 when `full`
 * (once per variant). Never inside a timed section.
 */
export async function checkCopy(
  path: string,
  source: Source,
  full: boolean,
  what: string,
): Promise<void> {
  let size: number;
  try {
    size = (await Deno.stat(path)).size;
  } catch {
    throw new BenchError(`${what}: no copy at ${path}`);
  }
  if (size !== source.size) {
    throw new BenchError(
      `${what}: copy has ${size} bytes, expected ${source.size}`,
    );
  }
  if (full) {
    const digest = await hashFile(path);
    if (digest !== source.sha256) {
      throw new BenchError(
        `${what}: copy's SHA-256 ${digest} is not the source's ${source.sha256}`,
      );
    }
  }
}
