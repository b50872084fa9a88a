/**
 * `deno task fuzz`: a seeded protocol fuzzer for the ftv server. It starts a
 * server in this process, sends it hostile frames over many connections
 * (made by `FrameFuzzer` in `frames.ts`, sent by {@linkcode runFuzz}), then
 * checks that a well-behaved client still gets a file through verified and
 * that nothing was written outside the server's folder.
 *
 * Run it: `deno task fuzz --frames 10000 --seed 7`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Logger } from "../../base/log.ts";
import { serve } from "../../server.ts";
import { snapshotTree, strayEntries, verifyGoodClient } from "./checks.ts";
import { type FuzzStats, runFuzz } from "./run.ts";

const FUZZ_USAGE =
  `Usage: deno task fuzz [--frames N] [--seed N] [--concurrency N]

Starts an ftv server in this process on 127.0.0.1, sends it N fuzzed frames
(default 10000) over many connections, then checks that a good client still
transfers a file verified and that nothing was written outside the server's
folder. Exit code 0 when all holds.`;

/** What the command line asked for. */
interface FuzzArgs {
  frames: number;
  seed: number;
  concurrency: number;
}

/** The options in `args`, or the exit code after `--help` or a bad value. */
function parseFuzzArgs(args: string[]): FuzzArgs | number {
  const { values } = parseArgs({
    args,
    options: {
      frames: { type: "string" },
      seed: { type: "string" },
      concurrency: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(FUZZ_USAGE);
    return 0;
  }
  const parsed = {
    frames: Number(values.frames ?? 10_000),
    seed: values.seed === undefined
      ? crypto.getRandomValues(new Uint32Array(1))[0]!
      : Number(values.seed),
    concurrency: Number(values.concurrency ?? 8),
  };
  for (const [name, value] of Object.entries(parsed)) {
    if (!Number.isSafeInteger(value) || value < (name === "seed" ? 0 : 1)) {
      console.error(`fuzz: --${name} must be a whole number`);
      return 2;
    }
  }
  return parsed;
}

/** Prints what the run did. */
function printStats(stats: FuzzStats, serverLines: number): void {
  console.log(`frames sent:        ${stats.framesSent}`);
  console.log(`bytes sent:         ${stats.bytesSent}`);
  console.log(`connections:        ${stats.connections}`);
  console.log(`closed by server:   ${stats.closedByServer}`);
  console.log(`ended by reset:     ${stats.resets}`);
  console.log(
    `frames received:    ${stats.framesReceived} (${
      Object.entries(stats.replyTypes).sort().map(([type, count]) =>
        `${type} ${count}`
      ).join(", ")
    })`,
  );
  console.log(`errors received:    ${stats.errorsReceived}`);
  for (const [code, count] of Object.entries(stats.errorCodes).sort()) {
    console.log(
      `  ${code.padEnd(20)}${String(count).padStart(6)}  e.g. ${
        stats.errorSamples[code]?.slice(0, 100)
      }`,
    );
  }
  console.log(`hung connections:   ${stats.hung}`);
  console.log(`server log lines:   ${serverLines} (warnings and errors)`);
  console.log(`time:               ${(stats.ms / 1000).toFixed(1)} s`);
}

/** The sandbox's folders: the server's, one beside it with a canary. */
interface Sandbox {
  root: string;
  dir: string;
  outside: string;
}

/** Makes the sandbox: a server folder with `seed.bin`, a canary outside. */
async function makeSandbox(): Promise<Sandbox> {
  const root = await Deno.makeTempDir({ prefix: "ftv-fuzz-" });
  const box = { root, dir: `${root}/srv`, outside: `${root}/outside` };
  try {
    await Deno.mkdir(box.dir);
    await Deno.mkdir(box.outside);
    await Deno.writeTextFile(`${box.outside}/canary.txt`, "do not touch\n");
    await Deno.writeFile(
      `${box.dir}/seed.bin`,
      crypto.getRandomValues(new Uint8Array(5000)),
    );
  } catch (error) {
    await Deno.remove(root, { recursive: true });
    throw error;
  }
  return box;
}

/** What went wrong outside and inside the server's folder, if anything. */
async function folderProblems(
  box: Sandbox,
  before: string[],
): Promise<string[]> {
  const problems: string[] = [];
  const after = (await snapshotTree(box.root, box.dir)).filter((line) =>
    !line.startsWith(`${box.root}/good-client.`)
  );
  if (JSON.stringify(after) !== JSON.stringify(before)) {
    problems.push(
      `files changed outside the server folder: ${
        after.filter((line) => !before.includes(line)).join(", ")
      }`,
    );
  }
  const stray = await strayEntries(box.dir);
  if (stray.length > 0) {
    problems.push(`unexpected entries in the server folder: ${stray}`);
  }
  return problems;
}

/** Fuzzes a server in `box`, then checks it; the exit code. */
async function fuzzSandbox(box: Sandbox, args: FuzzArgs): Promise<number> {
  const before = await snapshotTree(box.root, box.dir);
  let serverLines = 0;
  await using server = await serve({
    host: "127.0.0.1",
    port: 0,
    dir: box.dir,
    chunkSize: 1024,
    idleTimeoutMs: 5000,
    handshakeTimeoutMs: 5000,
    log: new Logger("FileTransferServer", {
      level: "WARNING",
      sink: () => void serverLines++,
    }),
  });
  let crashed: unknown;
  server.finished.catch((error) => crashed = error);
  console.log(
    `Fuzzing 127.0.0.1:${server.addr.port} with ${args.frames} frames, seed ${args.seed}`,
  );
  const stats = await runFuzz({
    port: server.addr.port,
    ...args,
    outside: box.outside,
  });
  printStats(stats, serverLines);
  const problems: string[] = [];
  if (crashed !== undefined) {
    problems.push(`the server stopped: ${(crashed as Error).message}`);
  }
  if (stats.hung > 0) problems.push(`${stats.hung} connection(s) hung`);
  const good = await verifyGoodClient(server.addr.port, box.root);
  problems.push(...await folderProblems(box, before));
  if (problems.length > 0) {
    for (const problem of problems) console.error(`FAILED: ${problem}`);
    return 1;
  }
  console.log(
    `Afterwards a good client sent and got back ${good.bytes} bytes, verified (SHA-256 ${good.sha256}); nothing was written outside the server folder.`,
  );
  return 0;
}

async function main(args: string[]): Promise<number> {
  const parsed = parseFuzzArgs(args);
  if (typeof parsed === "number") return parsed;
  const box = await makeSandbox();
  try {
    return await fuzzSandbox(box, parsed);
  } finally {
    await Deno.remove(box.root, { recursive: true });
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
