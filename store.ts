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

import type { Logger } from "./base/log.ts";
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

/**
 * An S3 bucket (Ceph RGW, MinIO, AWS...) as a server's store: what
 * `ftv server --store s3://BUCKET/PREFIX --s3-endpoint URL` opens.
 */
export interface S3Options {
  /** `s3://BUCKET` or `s3://BUCKET/PREFIX`; the bucket is created when missing. */
  url: string;
  /**
   * The service's endpoints, path-style (`http://127.0.0.1:7480`): gateways
   * of one cluster, tried in turn when one cannot be reached.
   */
  endpoints: string[];
  /** The region signed for. @default AWS_REGION, else "us-east-1" */
  region?: string;
  /** The access key id. @default AWS_ACCESS_KEY_ID */
  accessKeyId?: string;
  /** The secret access key. @default AWS_SECRET_ACCESS_KEY */
  secretAccessKey?: string;
  /** A session token, with temporary credentials. @default AWS_SESSION_TOKEN */
  sessionToken?: string;
  /**
   * How long a server holds an upload without renewing its lease: a server
   * that dies blocks its uploads this long before another takes them over.
   * @default 10000
   */
  leaseMs?: number;
}

/** The environment variables an S3 store reads. */
export const S3_ENV: readonly string[] = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_REGION",
  "AWS_SESSION_TOKEN",
];

/** Opens an S3 store (dynamically: a local server never loads the S3 code). */
export async function openS3(options: S3Options, log: Logger): Promise<Store> {
  let denied = false;
  const env = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      denied = true; // No --allow-env: only what the options give.
      return undefined;
    }
  };
  const accessKeyId = options.accessKeyId ?? env("AWS_ACCESS_KEY_ID");
  const secretAccessKey = options.secretAccessKey ??
    env("AWS_SECRET_ACCESS_KEY");
  if (!accessKeyId || !secretAccessKey) {
    throw new RangeError(
      `Cannot open the S3 store: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY${
        denied
          ? ` and allow reading them (--allow-env=${S3_ENV.join(",")})`
          : ""
      }`,
    );
  }
  const sessionToken = options.sessionToken ?? env("AWS_SESSION_TOKEN");
  const { openS3Store } = await import("./store/s3/s3_store.ts");
  return await openS3Store({
    url: options.url,
    endpoints: options.endpoints,
    region: options.region ?? env("AWS_REGION") ?? "us-east-1",
    accessKeyId,
    secretAccessKey,
    ...(sessionToken ? { sessionToken } : {}),
    ...(options.leaseMs === undefined ? {} : { leaseMs: options.leaseMs }),
    log,
  });
}
