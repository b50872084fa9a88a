/**
 * What the client does with received files that a user would notice: a
 * wrong `--expect-sha256` refused before any data moves, `get` to a folder
 * or with a trailing slash, Ctrl-C, modes within the umask, and received
 * names that fit the file system. The CLI and the server run as real child
 * processes.
 */

import assert from "node:assert/strict";
import { ftvCommand } from "../tools/harness.ts";
import {
  exists,
  failureMessage,
  fileSize,
  lines,
  listDir,
  pollUntil,
  runCli,
  sameBytes,
  type ServiceProcess,
  sha256File,
  spawnCli,
  spawnServer,
  spawnWithDeadline,
  type TempDir,
  tempDir,
  writeRandomFile,
} from "./test_util.ts";

const HOST = ["--host", "127.0.0.1"];
const KiB = 1024;
const MiB = 1024 * KiB;
const CLEAR_LINE = "\r\x1b[2K";

/** The JSON result a command printed last on stdout. */
function resultOf(stdout: string): Record<string, unknown> {
  return JSON.parse(lines(stdout).at(-1)!);
}

/** How many ordinary gets the server has answered. */
function offers(log: string): number {
  return log.match(/File split into \d+ chunks/g)?.length ?? 0;
}

Deno.test("get --expect-sha256 with another digest stops before the first data byte", async (t) => {
  await using tmp = await tempDir();
  const file = tmp.join("big.bin");
  await writeRandomFile(file, 8 * MiB);
  const actual = await sha256File(file);
  await using server = await spawnServer(["--dir", tmp.join("srv")]);
  const port = [...HOST, "--port", String(server.port)];
  const sent = await runCli(["send", file, ...port]);
  assert.equal(sent.code, 0, sent.stderr);

  await t.step("a stored file with another digest", async () => {
    const wrong = "AB".repeat(32);
    const out = tmp.join("copy.bin");
    const before = offers(server.log());
    const got = await runCli([
      "get",
      "big.bin",
      "--out",
      out,
      "--expect-sha256",
      wrong,
      ...port,
    ]);
    assert.equal(got.code, 1, got.stderr);
    assert.equal(
      failureMessage(got.stderr),
      `ftv: Cannot get "big.bin": the server's copy has SHA-256 ${actual}, not the expected ${wrong.toLowerCase()}`,
    );
    assert.equal(
      offers(server.log()) - before,
      1,
      "the file was offered again",
    );
    assert.ok(!(await exists(out)), "a file took the final name");
    assert.ok(!(await exists(`${out}.ftv-part`)), "data was written");
  });

  await t.step("a name the server does not hold", async () => {
    const got = await runCli(
      ["get", "missing.bin", "--expect-sha256", actual, ...port],
      { cwd: tmp.path },
    );
    assert.equal(got.code, 1, got.stderr);
    assert.equal(
      failureMessage(got.stderr),
      'ftv: Cannot get "missing.bin": no such file on the server',
    );
  });
});

/**
 * A server with 4 KiB chunks holding, sent from `tmp/src`, a folder
 * `photos` (a small file, and in `sub` one of several chunks) and a file
 * `file` of several chunks; `prepare` may change them before they are sent.
 */
async function storePhotos(
  tmp: TempDir,
  file: string,
  prepare: (src: string) => Promise<void> = async () => {},
): Promise<{ src: string; server: ServiceProcess; port: string[] }> {
  const src = tmp.join("src");
  await Deno.mkdir(`${src}/photos/sub`, { recursive: true });
  await writeRandomFile(`${src}/photos/a.jpg`, 1000);
  await writeRandomFile(`${src}/photos/sub/b.jpg`, 20 * KiB);
  await writeRandomFile(`${src}/${file}`, 30 * KiB);
  await prepare(src);
  const server = await spawnServer([
    "--dir",
    tmp.join("srv"),
    "--chunk-size",
    "4096",
  ]);
  const port = [...HOST, "--port", String(server.port)];
  for (const path of [`${src}/photos`, `${src}/${file}`]) {
    const sent = await runCli(["send", path, ...port]);
    assert.equal(sent.code, 0, sent.stderr);
  }
  return { src, server, port };
}

Deno.test("get NAME/ is get NAME, and get --out FOLDER writes FOLDER/NAME as cp does", async (t) => {
  await using tmp = await tempDir();
  const stored = await storePhotos(tmp, "doc.bin");
  await using _server = stored.server;
  const { src, port } = stored;
  const samePhotos = async (copy: string) => {
    for (const name of ["a.jpg", "sub/b.jpg"]) {
      assert.ok(
        await sameBytes(`${src}/photos/${name}`, `${copy}/${name}`),
        `${copy}/${name}`,
      );
    }
  };

  await t.step("get photos/ gets the folder", async () => {
    const cwd = tmp.join("slash");
    await Deno.mkdir(cwd);
    const got = await runCli(["get", "photos/", ...port], { cwd });
    assert.equal(got.code, 0, got.stderr);
    await samePhotos(`${cwd}/photos`);
  });

  await t.step("get doc.bin --out FOLDER writes FOLDER/doc.bin", async () => {
    const into = tmp.join("into-file");
    await Deno.mkdir(into);
    const got = await runCli(["get", "doc.bin", "--out", into, ...port]);
    assert.equal(got.code, 0, got.stderr);
    assert.ok(await sameBytes(`${src}/doc.bin`, `${into}/doc.bin`));
    assert.equal(
      got.stdout.trim(),
      `${await sha256File(`${src}/doc.bin`)}  ${into}/doc.bin`,
    );
  });

  await t.step("get photos --out FOLDER writes FOLDER/photos", async () => {
    const into = tmp.join("into-folder");
    await Deno.mkdir(into);
    const got = await runCli(["get", "photos", "--out", into, ...port]);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(await listDir(into), ["photos"]);
    await samePhotos(`${into}/photos`);
  });

  await t.step(
    "a folder got into a new --out, run again, stays there",
    async () => {
      const copy = tmp.join("copy");
      const args = ["get", "photos", "--out", copy, "--json", ...port];
      const first = await runCli(args);
      assert.equal(first.code, 0, first.stderr);
      await Deno.remove(`${copy}/sub/b.jpg`);
      const again = await runCli(args);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(await listDir(copy), ["a.jpg", "sub"]);
      await samePhotos(copy);
      assert.equal(resultOf(again.stdout).resumedFiles, 1);
    },
  );
});

Deno.test("Ctrl-C stops get and send with one line saying where, exit 130, and the same command resumes", async (t) => {
  await using tmp = await tempDir();
  const file = tmp.join("big.bin");
  await writeRandomFile(file, 4 * MiB);
  const expected = await sha256File(file);
  const srv = tmp.join("srv");
  await using server = await spawnServer([
    "--dir",
    srv,
    "--chunk-size",
    "65536",
  ]);
  const port = [...HOST, "--port", String(server.port)];
  const sent = await runCli(["send", file, ...port]);
  assert.equal(sent.code, 0, sent.stderr);
  const slow = ["--limit-rate", "1M", "--json", ...port];
  const stopLine = (name: string) =>
    new RegExp(
      `^ftv: stopped at \\d+(\\.\\d)? (B|KiB|MiB) of 4\\.0 MiB of ${name}; run the same command again to resume$`,
    );
  /** Starts `args`, sends SIGINT once `part` holds 256 KiB, and returns what it printed. */
  const interrupted = async (args: string[], part: string) => {
    await using child = spawnCli(args, { cwd: tmp.path });
    await pollUntil(async () => ((await fileSize(part)) ?? 0) >= 256 * KiB, {
      what: `${part} to grow`,
    });
    child.kill("SIGINT");
    return await child.result;
  };

  await t.step("get, with a progress bar", async () => {
    const out = tmp.join("copy.bin");
    const args = ["get", "big.bin", "--out", out, "--progress", "bar", ...slow];
    const stopped = await interrupted(args, `${out}.ftv-part`);
    assert.equal(stopped.code, 130, stopped.stderr);
    assert.match(failureMessage(stopped.stderr), stopLine("big\\.bin"));
    assert.ok(stopped.stdout.includes("big.bin ["), "no bar was drawn");
    assert.ok(stopped.stdout.endsWith(CLEAR_LINE), "the bar was left drawn");
    assert.ok(!(await exists(out)), "a partial file took the final name");
    const again = await runCli(args, { cwd: tmp.path });
    assert.equal(again.code, 0, again.stderr);
    const result = resultOf(again.stdout);
    assert.equal(result.sha256, expected);
    assert.ok((result.resumedBytes as number) > 0, "nothing was resumed");
  });

  await t.step("send, with JSON progress", async () => {
    const args = [
      "send",
      file,
      "--as",
      "up.bin",
      "--progress",
      "json",
      ...slow,
    ];
    const stopped = await interrupted(args, `${srv}/up.bin.ftv-part`);
    assert.equal(stopped.code, 130, stopped.stderr);
    assert.match(failureMessage(stopped.stderr), stopLine("up\\.bin"));
    const events = lines(stopped.stdout).map((line) => JSON.parse(line));
    assert.equal(events.at(-1).event, "stopped");
    const again = await runCli(args, { cwd: tmp.path });
    assert.equal(again.code, 0, again.stderr);
    const result = resultOf(again.stdout);
    assert.equal(result.sha256, expected);
    assert.ok((result.resumedBytes as number) > 0, "nothing was resumed");
  });
});

/** Runs `ftv <args>` under `umask`, with `permissions` when given. */
function runUnderUmask(
  umask: string,
  args: string[],
  options: { cwd: string; permissions?: string[] },
) {
  const command = ftvCommand(args, {
    ...(options.permissions ? { permissions: options.permissions } : {}),
  });
  return spawnWithDeadline(
    "sh",
    [
      "-c",
      `umask ${umask} && exec "$@"`,
      "sh",
      command.program,
      ...command.args,
    ],
    { cwd: options.cwd },
  ).result;
}

Deno.test("files and folders got under umask 077 are not readable by others, whatever mode was sent", async (t) => {
  await using tmp = await tempDir();
  const stored = await storePhotos(tmp, "tool.sh", async (src) => {
    for (const path of ["photos", "photos/sub", "photos/a.jpg", "tool.sh"]) {
      await Deno.chmod(`${src}/${path}`, 0o755);
    }
  });
  await using _server = stored.server;
  const { src, port } = stored;
  const permissions = {
    "a probe folder (no --allow-sys)": undefined,
    "node:process (--allow-sys)": [
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-sys",
    ],
  };
  for (const [how, granted] of Object.entries(permissions)) {
    await t.step(how, async () => {
      const cwd = tmp.join(granted ? "sys" : "probe");
      await Deno.mkdir(cwd);
      for (const name of ["photos", "tool.sh"]) {
        const got = await runUnderUmask("077", ["get", name, ...port], {
          cwd,
          ...(granted ? { permissions: granted } : {}),
        });
        assert.equal(got.code, 0, got.stderr);
      }
      const expected: Record<string, number> = {
        "photos": 0o700,
        "photos/sub": 0o700,
        "photos/a.jpg": 0o700,
        "photos/sub/b.jpg": (await Deno.stat(`${src}/photos/sub/b.jpg`)).mode! &
          0o700,
        "tool.sh": 0o700,
      };
      for (const [path, mode] of Object.entries(expected)) {
        const got = (await Deno.stat(`${cwd}/${path}`)).mode! & 0o777;
        assert.equal(got.toString(8), mode.toString(8), path);
      }
      assert.deepEqual(await listDir(cwd), ["photos", "tool.sh"]);
    });
  }
});

Deno.test("client --file with a 240-byte name writes a received file whose part files fit 255 bytes", async () => {
  await using tmp = await tempDir();
  const name = "é".repeat(118) + ".bin";
  assert.equal(new TextEncoder().encode(name).length, 240);
  const file = tmp.join(name);
  await writeRandomFile(file, 100 * KiB);
  const work = tmp.join("work");
  await Deno.mkdir(work);
  await using server = await spawnServer(["--dir", tmp.join("srv")]);
  const result = await runCli(
    ["client", "--file", file, ...HOST, "--port", String(server.port)],
    { cwd: work },
  );
  assert.equal(result.code, 0, result.stderr);
  const [received, ...rest] = await listDir(work);
  assert.deepEqual(rest, []);
  assert.ok(received!.startsWith("received_é"), received);
  assert.ok(received!.endsWith("é.bin"), received);
  const bytes = new TextEncoder().encode(received!).length;
  assert.ok(bytes + ".ftv-state.tmp".length <= 255, `${bytes} bytes`);
  assert.ok(await sameBytes(file, `${work}/${received}`));
});
