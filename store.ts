/**
 * Where a server keeps files: one interface, {@linkcode Store}, that every
 * request handler (ftv/1 and HTTP alike) sees, with two implementations: a
 * local folder (`store/local/`: the catalog, part files, parity and digest
 * cache) and an S3 bucket (`store/s3/`: multipart uploads whose resume
 * state lives in the bucket, so any server can continue any transfer). The
 * way tusd's handler sees only its DataStore, Upload and Locker.
 *
 * @module
 */

import { LocalStore } from "./store/local/local_store.ts";
import type { ParityShape } from "./store/local/parity_store.ts";
import type { Store } from "./store/interface.ts";

export type * from "./store/interface.ts";
export {
  damagedRefusal,
  manifestOf,
  newUploadId,
  noSpaceRefusal,
} from "./store/interface.ts";
export type { ParityShape } from "./store/local/parity_store.ts";

/** Options for {@linkcode openLocalStore}. */
export interface LocalStoreOptions {
  /** The folder; it must exist. */
  dir: string;
  /** Parity kept beside each stored file, or none. */
  parity: ParityShape | undefined;
  /** Chunk size of the parity (the server's). */
  chunkSize: number;
}

/**
 * The store in a local folder.
 *
 * @example
 * ```ts
 * import { openLocalStore } from "./store.ts";
 * await Deno.mkdir("./ftv-data", { recursive: true });
 * const store = openLocalStore({ dir: "./ftv-data", parity: undefined, chunkSize: 1 << 20 });
 * console.log((await store.listTree()).files.length);
 * ```
 */
export function openLocalStore(options: LocalStoreOptions): Store {
  return new LocalStore(options.dir, options.parity, options.chunkSize);
}
