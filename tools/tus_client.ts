/**
 * tus-js-client 4.3 (the real npm package, run under Deno) uploading one
 * file to an ftv server's HTTP port, in tus 1.0 or as the IETF draft
 * (`ietf-draft-05`): for the tests and the bench. The file is read as a
 * stream (an `fs.ReadStream`, which tus-js-client slices by range), so
 * memory stays flat whatever its size.
 *
 * Run directly it uploads and prints one JSON line:
 * `deno run -A tools/tus_client.ts --endpoint URL --file PATH --name NAME
 * [--protocol tus-v1|ietf-draft-05] [--chunk-size BYTES] [--ca FILE]`.
 *
 * @module
 */

import { createReadStream } from "node:fs";
import * as http from "node:http";
import * as https from "node:https";
import { parseArgs } from "node:util";
import { DefaultHttpStack, Upload, type UploadOptions } from "tus-js-client";

/** Options for {@linkcode tusUpload}. */
export interface TusUploadOptions {
  /** The collection new uploads are created at (`http://HOST:PORT/files/`). */
  endpoint?: string;
  /** An upload to resume instead of creating one. */
  uploadUrl?: string;
  /** The name to store the file under (`Upload-Metadata: filename`). */
  name: string;
  /** @default "tus-v1" */
  protocol?: "tus-v1" | "ietf-draft-05";
  /** Bytes per PATCH. @default the whole rest of the file */
  chunkSize?: number;
  /** Pauses between retries after a failure. @default [0, 100, 200, 400, 800] */
  retryDelays?: number[];
  /** Send the first bytes with the creation request. @default false */
  uploadDataDuringCreation?: boolean;
  /** Extra header fields (a token: `Authorization`). */
  headers?: Record<string, string>;
  /** A CA certificate (PEM) to trust for https. */
  ca?: string;
  /** Told of every accepted PATCH. */
  onChunk?: (accepted: number) => void;
  /** Stop (abort the upload, resolving) once the server holds this many bytes. */
  stopAfter?: number;
  /** Told of each request before it goes out, with a way to read its header fields. */
  onRequest?: (
    method: string,
    header: (name: string) => string | undefined,
  ) => void;
}

/** What a finished upload did. */
export interface TusResult {
  /** The upload's URL. */
  url: string;
  /** Bytes of the file. */
  bytes: number;
  /** The bytes the server held when `stopAfter` stopped the upload. */
  stoppedAt?: number;
}

/**
 * Uploads the file at `path` with tus-js-client; resolves once the server
 * has all of it (or `stopAfter` bytes of it), and rejects on a failure
 * tus-js-client gives up on.
 */
export function tusUpload(
  path: string,
  options: TusUploadOptions,
): Promise<TusResult> {
  const bytes = Deno.statSync(path).size;
  const secure = (options.endpoint ?? options.uploadUrl ?? "").startsWith(
    "https:",
  );
  const agent = secure
    ? new https.Agent({
      keepAlive: false,
      ...(options.ca ? { ca: options.ca } : {}),
    })
    : new http.Agent({ keepAlive: false });
  return new Promise((resolve, reject) => {
    // `protocol` is in tus-js-client 4.3 but not in its type declarations.
    const settings: UploadOptions & { protocol: string } = {
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.uploadUrl ? { uploadUrl: options.uploadUrl } : {}),
      protocol: options.protocol ?? "tus-v1",
      metadata: { filename: options.name },
      ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
      retryDelays: options.retryDelays ?? [0, 100, 200, 400, 800],
      uploadDataDuringCreation: options.uploadDataDuringCreation ?? false,
      headers: options.headers ?? {},
      httpStack: new DefaultHttpStack({ agent }),
      storeFingerprintForResuming: false,
      onBeforeRequest: (request) =>
        options.onRequest?.(
          request.getMethod(),
          (name) => request.getHeader(name) as string | undefined,
        ),
      onChunkComplete: (_size, accepted) => {
        options.onChunk?.(accepted);
        if (accepted >= (options.stopAfter ?? Infinity) && accepted < bytes) {
          upload.abort();
          resolve({ url: upload.url!, bytes, stoppedAt: accepted });
        }
      },
      onSuccess: () => resolve({ url: upload.url!, bytes }),
      onError: (error) => reject(error),
    };
    const upload: Upload = new Upload(createReadStream(path), settings);
    upload.start();
  }).finally(() => agent.destroy()) as Promise<TusResult>;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      endpoint: { type: "string" },
      file: { type: "string" },
      name: { type: "string" },
      protocol: { type: "string", default: "tus-v1" },
      "chunk-size": { type: "string" },
      ca: { type: "string" },
    },
  });
  const started = performance.now();
  const result = await tusUpload(values.file!, {
    endpoint: values.endpoint!,
    name: values.name!,
    protocol: values.protocol as "tus-v1" | "ietf-draft-05",
    ...(values["chunk-size"]
      ? { chunkSize: Number(values["chunk-size"]) }
      : {}),
    ...(values.ca ? { ca: Deno.readTextFileSync(values.ca) } : {}),
  });
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ ...result, seconds }));
}
