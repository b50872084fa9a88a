/**
 * The seed's demonstration: makes a random file, starts a server in the
 * background, round-trips the file through it (optionally with simulated
 * loss, corruption and reordering), verifies it and prints a banner.
 *
 * @module
 */

import { roundTrip } from "./client.ts";
import type { FecMode } from "./engine/fec.ts";
import type { Io } from "./base/io.ts";
import { COMPONENT, Logger, type LogLevel } from "./base/log.ts";
import {
  serve,
  serveUntilSignal,
  type SimulateErrorsOptions,
} from "./server.ts";

/** Size of the demo's random test file in KB, unless told otherwise. */
export const DEMO_FILE_KB = 10;
/** The seed's chunk size: small, so chunks and simulated errors show. */
export const DEMO_CHUNK_SIZE = 1024;

/** Options for {@linkcode runDemo}. */
export interface DemoOptions {
  /** Size of the random test file in KB. @default {@linkcode DEMO_FILE_KB} */
  testFileSizeKb: number;
  /** Lose, damage and reorder the server's chunks, at this rate and seed. */
  simulateErrors: false | SimulateErrorsOptions;
  /** Chunk size. @default {@linkcode DEMO_CHUNK_SIZE} */
  chunkSize: number;
  maxRetries: number;
  /** Parity on the way back, so lost chunks are rebuilt without asking. @default "off" */
  fec?: FecMode;
  mode: "demo" | "server" | "client";
  /** File to send instead of a random one. */
  file?: string;
  host: string;
  port: number;
  level: LogLevel;
}

const PIECE_BYTES = 64 * 1024;

/** Writes `bytes` random bytes to `path`, a piece at a time. */
export async function writeRandomFile(
  path: string,
  bytes: number,
): Promise<void> {
  using file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const piece = new Uint8Array(PIECE_BYTES);
  for (let left = bytes; left > 0; left -= PIECE_BYTES) {
    const part = piece.subarray(0, Math.min(PIECE_BYTES, left));
    crypto.getRandomValues(part);
    let written = 0;
    while (written < part.length) {
      written += await file.write(part.subarray(written));
    }
  }
}

/** Runs the demo in the chosen mode; resolves to the exit code. */
export async function runDemo(options: DemoOptions, io: Io): Promise<number> {
  const log = new Logger(COMPONENT.demo, { level: options.level });
  const serverOptions = {
    chunkSize: options.chunkSize,
    simulateErrors: options.simulateErrors,
    log: log.child(COMPONENT.server),
  };
  if (options.mode === "server") {
    log.info("Starting server mode...");
    await serveUntilSignal({
      ...serverOptions,
      host: options.host,
      port: options.port,
      dir: "./ftv-data",
    });
    return 0;
  }
  log.info(`Starting ${options.mode} mode...`);
  const workDir = await Deno.makeTempDir({ prefix: "ftv-demo-" });
  try {
    const original = options.file ?? `${workDir}/test_file.dat`;
    if (options.file === undefined) {
      await writeRandomFile(original, options.testFileSizeKb * 1024);
      log.info(`Created test file: ${original} (${options.testFileSizeKb} KB)`);
    }
    const received = `${workDir}/received_${original.split("/").pop()}`;
    const clientLog = log.child(COMPONENT.client);
    if (options.mode === "client") {
      return await demoRoundTrip(
        original,
        received,
        {
          host: options.host,
          port: options.port,
        },
        options,
        clientLog,
        io,
      );
    }
    await using server = await serve({
      ...serverOptions,
      host: "127.0.0.1",
      port: 0,
      dir: `${workDir}/server`,
    });
    return await demoRoundTrip(
      original,
      received,
      {
        host: "127.0.0.1",
        port: server.addr.port,
      },
      options,
      clientLog,
      io,
    );
  } finally {
    await Deno.remove(workDir, { recursive: true });
  }
}

async function demoRoundTrip(
  original: string,
  received: string,
  address: { host: string; port: number },
  options: DemoOptions,
  log: Logger,
  io: Io,
): Promise<number> {
  try {
    const result = await roundTrip(original, {
      ...address,
      log,
      out: received,
      maxRetries: options.maxRetries,
      fec: options.fec ?? "off",
    });
    log.info(
      `Transfer Successful! Time taken: ${result.seconds.toFixed(2)} seconds`,
    );
  } catch (error) {
    log.error(`Transfer failed: ${(error as Error).message}`);
    io.out(banner("FILE TRANSFER FAILED", original, undefined));
    return 1;
  }
  const sizes = await Promise.all([Deno.stat(original), Deno.stat(received)]);
  io.out(banner("FILE TRANSFER SUCCESSFUL!", original, received, sizes));
  return 0;
}

function banner(
  title: string,
  original: string,
  received: string | undefined,
  sizes?: Deno.FileInfo[],
): string {
  const rule = "=".repeat(33);
  const lines = [
    "",
    rule,
    `${received ? "🎉" : "❌"} ${title} ${received ? "🎉" : "❌"}`,
    rule,
    "",
  ];
  lines.push(`Original file: ${original}`);
  if (sizes) lines.push(`Size: ${sizes[0]!.size} bytes`);
  if (received && sizes) {
    lines.push(
      "",
      `Received file: ${received}`,
      `Size: ${sizes[1]!.size} bytes`,
      "",
    );
    lines.push(
      sizes[0]!.size === sizes[1]!.size
        ? "File sizes match ✅"
        : "File sizes differ ❌",
    );
    lines.push("SHA-256 verified per chunk and for the whole file ✅");
  }
  return lines.join("\n");
}
