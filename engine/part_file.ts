/**
 * Claiming a part file (`<name>.ftv-part`) for one writer across processes.
 *
 * The claim is an exclusive advisory lock (`flock(2)`, through
 * `Deno.FsFile.tryLock`) held on the open part file for the whole transfer,
 * and given up only by closing it, after the final rename. Why a lock and
 * not a lock file: the kernel drops the lock when its process dies (kill -9,
 * a crash), so nothing stale is left to expire, and a second process asking
 * while the first is alive is told at once. After the lock is taken, the
 * part file must still be the one at the path: a claim that raced with the
 * previous owner's final rename would otherwise hold the finished file
 * itself. Every writer of a part file (resumable uploads, whole small files,
 * the clean-up of abandoned ones) claims it first, so the rename into place
 * is only ever done by the process whose bytes were verified.
 *
 * Where it holds: local file systems, and NFS (v4, or v3 with lockd), where
 * Linux turns `flock` into a byte-range lock the server sees. It does not
 * hold on SMB/CIFS mounts without byte-range locks, sshfs or FUSE object
 * stores: several servers there must use a shared S3 store instead.
 *
 * @module
 */

/** How often a claim that raced with a rename is tried again. */
const CLAIM_ATTEMPTS = 3;

/** A claimed part file: open for reading and writing, locked for this process. */
export interface ClaimedPart {
  /** The open, locked part file. Closing it gives up the claim. */
  readonly file: Deno.FsFile;
  /** Its size when claimed. */
  readonly size: number;
}

/**
 * Opens and claims the part file at `path` (creating it when missing,
 * never truncating it). `undefined` when another open file holds the claim,
 * in this process or another one.
 *
 * @example
 * ```ts
 * import { claimPart } from "./part_file.ts";
 * const claim = await claimPart("./big.iso.ftv-part");
 * if (claim) claim.file.close();
 * ```
 */
export async function claimPart(
  path: string,
): Promise<ClaimedPart | undefined> {
  for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
    const file = await Deno.open(path, {
      read: true,
      write: true,
      create: true,
    });
    let kept = false;
    try {
      if (!(await file.tryLock(true))) return undefined;
      const held = await file.stat();
      if (sameFile(held, await lstatIfPresent(path))) {
        kept = true;
        return { file, size: held.size };
      }
    } finally {
      if (!kept) file.close();
    }
  }
  return undefined;
}

/**
 * Creates the part file at `path` (it must not exist) and claims it, for a
 * writer that starts afresh. `undefined` when a part file is already there,
 * or when another process claimed the new one first (it is then theirs).
 */
export function createPartSync(
  path: string,
  mode: number,
): Deno.FsFile | undefined {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, {
      read: true,
      write: true,
      createNew: true,
      mode,
    });
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return undefined;
    throw error;
  }
  if (file.tryLockSync(true)) return file;
  file.close();
  return undefined;
}

/** Whether two stats describe the same file (device and inode). */
export function sameFile(
  a: Deno.FileInfo | undefined,
  b: Deno.FileInfo | undefined,
): boolean {
  return a !== undefined && b !== undefined && a.dev === b.dev &&
    a.ino !== null && a.ino === b.ino;
}

async function lstatIfPresent(
  path: string,
): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Positioned reads and writes on a claimed part file, which knows its size. */
export class PartIo {
  /** The open, claimed part file. */
  readonly file: Deno.FsFile;
  /** Its path, for messages. */
  readonly path: string;
  /** Its size: the furthest byte written or extended to. */
  size: number;
  #position = 0;

  /** I/O on `file` (at `path`), `size` bytes long. */
  constructor(file: Deno.FsFile, path: string, size: number) {
    this.file = file;
    this.path = path;
    this.size = size;
  }

  async #seek(offset: number): Promise<void> {
    if (this.#position !== offset) {
      await this.file.seek(offset, Deno.SeekMode.Start);
      this.#position = offset;
    }
  }

  /** Writes all of `bytes` at `offset`. */
  async writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    await this.#seek(offset);
    let written = 0;
    try {
      while (written < bytes.length) {
        written += await this.file.write(bytes.subarray(written));
      }
    } finally {
      this.#position = offset + written;
      this.size = Math.max(this.size, this.#position);
    }
  }

  /** Makes the file at least `size` bytes long; what it grows by is a hole. */
  async extendTo(size: number): Promise<void> {
    if (this.size >= size) return;
    await this.file.truncate(size);
    this.size = size;
  }

  /** Fills `bytes` from `offset`; a file that ends first is an error. */
  async readAt(offset: number, bytes: Uint8Array): Promise<void> {
    await this.#seek(offset);
    let filled = 0;
    try {
      while (filled < bytes.length) {
        const got = await this.file.read(bytes.subarray(filled));
        if (got === null) {
          throw new Error(
            `Cannot read ${this.path}: ends before byte ${offset + filled}`,
          );
        }
        filled += got;
      }
    } finally {
      this.#position = offset + filled;
    }
  }
}
