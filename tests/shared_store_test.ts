/**
 * Two real server processes on one `--dir`, as when a restart overlaps the
 * old process or two services share a folder: uploads of one name race, and
 * every outcome must be exactly one of the inputs, listed with its own
 * digest by both servers and served back whole.
 */

import assert from "node:assert/strict";
import { Logger } from "../base/log.ts";
import { get, send, sendTree } from "../client.ts";
import { FtvClient } from "../client/ftv_client.ts";
import {
  sha256File,
  spawnServer,
  type TempDir,
  tempDir,
  writeRandomFile,
} from "./test_util.ts";

const MiB = 1024 * 1024;
/** Rounds per kind; `FTV_RACE_ROUNDS` runs more. */
const ROUNDS = Number(Deno.env.get("FTV_RACE_ROUNDS") ?? 8);

/** Both servers' view of `name`: each lists it with the digest of the bytes on disk. */
async function assertListedAsStored(
  ports: number[],
  path: string,
  name: string,
): Promise<string> {
  const stored = await sha256File(path);
  for (const port of ports) {
    using client = await FtvClient.connect({
      host: "127.0.0.1",
      port,
      log: quiet(),
    });
    const { files } = await client.listTree(name);
    assert.equal(files.length, 1, `server ${port} lists ${name}`);
    assert.equal(
      files[0]!.sha256,
      stored,
      `server ${port}'s digest of ${name}`,
    );
  }
  return stored;
}

function quiet(): Logger {
  return new Logger("FileTransferClient", { level: "ERROR" });
}

async function twoServers(tmp: TempDir) {
  const dir = tmp.join("shared");
  await Deno.mkdir(dir);
  const a = await spawnServer(["--dir", dir, "--no-fsync"]);
  const b = await spawnServer(["--dir", dir, "--no-fsync"]);
  return { dir, a, b };
}

Deno.test("two server processes on one folder never store a mix of two uploads of one name", async (t) => {
  await using tmp = await tempDir();
  const { dir, a, b } = await twoServers(tmp);
  await using _a = a;
  await using _b = b;
  const ports = [a.port, b.port];
  const mtime = new Date(2024, 0, 1);
  await t.step(`${ROUNDS} rounds of large files racing`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const inputs = [tmp.join(`a${round}.bin`), tmp.join(`b${round}.bin`)];
      for (const input of inputs) {
        await writeRandomFile(input, 3 * MiB + 17);
        await Deno.utime(input, mtime, mtime); // Same size and mtime: only the bytes differ.
      }
      const digests = await Promise.all(inputs.map(sha256File));
      const results = await Promise.allSettled(
        inputs.map((input, i) =>
          send(input, {
            host: "127.0.0.1",
            port: ports[i]!,
            as: "shared.bin",
            limitRate: 16 * MiB,
            retryDelayMs: 50,
            maxRetries: 20,
            log: quiet(),
          })
        ),
      );
      const verified = results.flatMap((result) =>
        result.status === "fulfilled" ? [result.value.sha256] : []
      );
      assert.ok(verified.length > 0, `round ${round}: some upload verified`);
      const stored = await assertListedAsStored(
        ports,
        `${dir}/shared.bin`,
        "shared.bin",
      );
      assert.ok(
        digests.includes(stored),
        `round ${round}: the stored file is exactly one of the inputs`,
      );
      assert.ok(verified.includes(stored), `round ${round}: and was verified`);
      for (const port of ports) {
        const out = tmp.join(`back${round}-${port}.bin`);
        const back = await get("shared.bin", {
          host: "127.0.0.1",
          port,
          out,
          fsync: false,
          log: quiet(),
        });
        assert.equal(back.sha256, stored);
        assert.equal(await sha256File(out), stored);
      }
    }
  });
  await t.step(
    `${ROUNDS} rounds of small files (eager puts) racing`,
    async () => {
      for (let round = 0; round < ROUNDS; round++) {
        const trees = [tmp.join(`ta${round}`), tmp.join(`tb${round}`)];
        for (const tree of trees) {
          await Deno.mkdir(`${tree}/small`, { recursive: true });
          await writeRandomFile(`${tree}/small/f.bin`, 4096);
          await Deno.utime(`${tree}/small/f.bin`, mtime, mtime);
        }
        const digests = await Promise.all(
          trees.map((tree) => sha256File(`${tree}/small/f.bin`)),
        );
        await Promise.allSettled(
          trees.map((tree, i) =>
            sendTree([`${tree}/small`], {
              host: "127.0.0.1",
              port: ports[i]!,
              retryDelayMs: 50,
              maxRetries: 20,
              log: quiet(),
            })
          ),
        );
        const stored = await assertListedAsStored(
          ports,
          `${dir}/small/f.bin`,
          "small/f.bin",
        );
        assert.ok(
          digests.includes(stored),
          `round ${round}: one of the inputs`,
        );
      }
    },
  );
  await t.step("no part or state file is left behind", async () => {
    const leftovers: string[] = [];
    for await (const entry of Deno.readDir(dir)) {
      if (/\.ftv-(part|state)/.test(entry.name)) leftovers.push(entry.name);
    }
    assert.deepEqual(leftovers, []);
  });
});
