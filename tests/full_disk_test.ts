/**
 * A full disk on the server, made real with a small tmpfs: the user is told
 * in one line that the server has no space left, nothing partial of a small
 * file is left, no temporary outlives its request, and abandoned part files
 * are removed after `--part-ttl` and counted by `--max-total` until then.
 *
 * Mounting needs root (or user namespaces); elsewhere these tests are
 * skipped with a message.
 */

import assert from "node:assert/strict";
import {
  pollUntil,
  runCli,
  sha256File,
  spawnServer,
  type TempDir,
  tempDir,
  writeRandomFile,
} from "./test_util.ts";

const MiB = 1024 * 1024;

/** Mounts a tmpfs of `size` at `path`; false when this machine does not let us. */
async function mountTmpfs(path: string, size: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", path],
      stdout: "null",
      stderr: "null",
    }).output();
    return success;
  } catch {
    return false;
  }
}

async function unmount(path: string): Promise<void> {
  await new Deno.Command("umount", { args: [path], stderr: "null" }).output();
}

const CAN_MOUNT = await (async () => {
  const probe = await Deno.makeTempDir({ prefix: "ftv-mount-probe-" });
  try {
    const mounted = await mountTmpfs(probe, "1m");
    if (mounted) await unmount(probe);
    return mounted;
  } finally {
    await Deno.remove(probe, { recursive: true });
  }
})();
if (!CAN_MOUNT) {
  console.log(
    "full_disk_test: skipped: mounting a tmpfs needs root (CI runs as root)",
  );
}

/** A small disk for the server, unmounted on dispose. */
async function smallDisk(tmp: TempDir, size: string) {
  const path = tmp.join("disk");
  await Deno.mkdir(path);
  assert.ok(await mountTmpfs(path, size), "mount a tmpfs");
  return {
    path,
    async [Symbol.asyncDispose]() {
      await unmount(path);
    },
  };
}

/** Every file under `dir` whose name marks it as ftv's temporary or partial. */
async function leftovers(dir: string): Promise<string[]> {
  const found: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) found.push(...await leftovers(path));
    else if (/\.ftv-|\.tmp$/.test(entry.name)) found.push(path);
  }
  return found;
}

function cli(port: number, ...args: string[]) {
  return runCli([...args, "--host", "127.0.0.1", "--port", String(port)]);
}

Deno.test({
  name:
    "a folder upload onto a full disk ends with one line naming the server's lack of space, and leaves nothing partial",
  ignore: !CAN_MOUNT,
  async fn() {
    await using tmp = await tempDir();
    await using disk = await smallDisk(tmp, "3m");
    await using server = await spawnServer(["--dir", disk.path]);
    await Deno.mkdir(tmp.join("photos"));
    for (let i = 0; i < 40; i++) {
      await writeRandomFile(
        tmp.join(`photos/${String(i).padStart(2, "0")}.jpg`),
        100_000,
      );
    }
    const result = await cli(server.port, "send", tmp.join("photos"));
    assert.equal(result.code, 1);
    const errors = result.stderr.split("\n").filter((l) =>
      l.startsWith("ftv:")
    );
    assert.equal(errors.length, 1, result.stderr);
    assert.match(
      errors[0]!,
      /the server has no space left for "photos\/\d\d\.jpg"/,
    );
    assert.doesNotMatch(result.stderr, /BrokenPipe|connection lost| {4}at /);
    assert.deepEqual(await leftovers(disk.path), []);
  },
});

Deno.test({
  name:
    "a large upload onto a full disk says so; its part file is counted by --max-total and removed after --part-ttl",
  ignore: !CAN_MOUNT,
  async fn() {
    await using tmp = await tempDir();
    await using disk = await smallDisk(tmp, "4m");
    const big = tmp.join("big.bin");
    await writeRandomFile(big, 6 * MiB);
    {
      await using server = await spawnServer(["--dir", disk.path]);
      const result = await cli(server.port, "send", big, "--max-retries", "0");
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /the server has no space left for "big\.bin"/,
      );
      assert.doesNotMatch(result.stderr, / {4}at /);
    }
    const part = `${disk.path}/big.bin.ftv-part`;
    const partBytes = (await Deno.stat(part)).size;
    assert.ok(partBytes > 0, "the part file is kept to resume");
    assert.deepEqual(
      (await leftovers(disk.path)).filter((p) => p.endsWith(".tmp")),
      [],
      "no temporary outlives its request",
    );
    const small = tmp.join("small.bin");
    await writeRandomFile(small, 200_000);
    {
      // The part file counts: a limit above the small file alone refuses it.
      await using server = await spawnServer([
        "--dir",
        disk.path,
        "--max-total",
        String(partBytes + 100_000),
      ]);
      const refused = await cli(
        server.port,
        "send",
        small,
        "--max-retries",
        "0",
      );
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /storage limit/);
    }
    // Abandoned since long ago: the next server sweeps it at start.
    const longAgo = new Date(Date.now() - 3 * 3600_000);
    await Deno.utime(part, longAgo, longAgo);
    await using server = await spawnServer([
      "--dir",
      disk.path,
      "--part-ttl",
      "3600",
    ]);
    await pollUntil(async () => (await leftovers(disk.path)).length === 0, {
      what: "the abandoned part file to be removed",
    });
    assert.match(
      server.log(),
      /Removed abandoned part file .*big\.bin\.ftv-part/,
    );
    const sent = await cli(server.port, "send", small);
    assert.equal(sent.code, 0, sent.stderr);
    assert.equal(
      await sha256File(`${disk.path}/small.bin`),
      await sha256File(small),
    );
  },
});
