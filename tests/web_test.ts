/**
 * The web page in a real browser: Debian's headless Chromium, driven by
 * puppeteer-core, against real `ftv server --http` processes. A 200 MB
 * upload survives the server being killed mid-upload and ends verified
 * with the digest sha256sum prints; a page reload resumes an upload once
 * the file is picked again; a folder keeps its tree; a download gives the
 * same bytes; a wrong token is told clearly and stores nothing; axe finds
 * no serious accessibility problem; screenshots go to `test-artifacts/`.
 *
 * Without Chromium these tests are skipped with a message saying what to
 * install; CI installs it and sets `FTV_REQUIRE_CHROMIUM=1`, which makes a
 * missing Chromium a failure instead.
 */

import axe from "axe-core";
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import {
  CHROMIUM_HINT,
  findChromium,
  launchChromium,
  openPage,
} from "../tools/browser.ts";
import { COMPONENT, Logger } from "../base/log.ts";
import { startProxy } from "../faults/proxy.ts";
import { httpServer } from "./http_util.ts";
import {
  exists,
  listDir,
  sameBytes,
  sha256sum,
  tempDir,
  unusedPort,
  writeRandomFile,
} from "./test_util.ts";

const MiB = 1024 * 1024;
const CHROMIUM = findChromium();
/** CI sets this, so a missing Chromium fails the tests instead of skipping them. */
const REQUIRED = Deno.env.get("FTV_REQUIRE_CHROMIUM") === "1";
if (!CHROMIUM && !REQUIRED) console.log(`web_test: skipped: ${CHROMIUM_HINT}`);

/** One row of the upload queue, as its data attributes tell. */
interface ItemState {
  name: string;
  phase: string;
  sent: number;
  accepted: number;
  resumedFrom?: number;
  sha256?: string;
  status: string;
  digest?: string;
}

/** The upload queue's rows. */
function items(page: Page): Promise<ItemState[]> {
  return page.$$eval("#queue li.item", (rows) =>
    rows.map((li) => ({
      name: li.dataset.name!,
      phase: li.dataset.phase!,
      sent: Number(li.dataset.sent),
      accepted: Number(li.dataset.accepted),
      ...(li.dataset.resumedFrom
        ? { resumedFrom: Number(li.dataset.resumedFrom) }
        : {}),
      ...(li.dataset.sha256 ? { sha256: li.dataset.sha256 } : {}),
      status: li.querySelector(".status")?.textContent ?? "",
      ...(li.querySelector(".digest")
        ? { digest: li.querySelector(".digest")!.textContent! }
        : {}),
    })));
}

/** Reads `read` every `everyMs` until `done` says yes; fails after `timeoutMs`, naming `what`. */
async function until<T>(
  what: string,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  { timeoutMs = 120_000, everyMs = 50 } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(
        `Timed out waiting for ${what}: ${JSON.stringify(value)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Waits until every one of `count` queue rows is verified or failed. */
function settled(page: Page, count: number, timeoutMs = 120_000) {
  return until(
    `${count} settled uploads`,
    () => items(page),
    (rows) =>
      rows.length >= count &&
      rows.every((row) => /verified|failed/.test(row.phase)),
    { timeoutMs },
  );
}

/**
 * A fault proxy in front of `port` that holds every read back 20 ms: a
 * link of about 12 MB/s, so a test surely acts mid-upload.
 */
async function slowLink(port: number) {
  const proxy = await startProxy({
    targetHost: "127.0.0.1",
    targetPort: port,
    delayMs: 20,
    log: new Logger(COMPONENT.proxy, { level: "WARNING" }),
  });
  return {
    url: `http://127.0.0.1:${proxy.addr.port}/`,
    [Symbol.asyncDispose]: () => proxy.close(),
  };
}

/**
 * Waits until the first row has sent more than `bytes`. "Sent" counts what
 * the browser handed to its socket: up to about 10 MiB of it (20 through
 * a proxy) may still sit in socket buffers.
 */
function sentMoreThan(page: Page, bytes: number) {
  return until(
    `more than ${bytes} bytes sent`,
    () => items(page),
    (rows) => (rows[0]?.sent ?? 0) > bytes,
    { timeoutMs: 60_000, everyMs: 10 },
  );
}

/** The text of `selector`, once it is not empty. */
function textOf(page: Page, selector: string): Promise<string> {
  return until(
    `text in ${selector}`,
    () => page.$eval(selector, (e) => e.textContent ?? ""),
    (text) => text !== "",
    { timeoutMs: 30_000 },
  );
}

const browserTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, ignore: !CHROMIUM && !REQUIRED, fn });

browserTest(
  "the page uploads 200 MB across a server killed mid-upload: it resumes from more than 0 and ends verified",
  async () => {
    await using tmp = await tempDir();
    const source = tmp.join("video.bin");
    await writeRandomFile(source, 200 * MiB);
    const expected = await sha256sum(source);
    const args = ["--http", String(unusedPort()), "--no-fsync"];
    const first = await httpServer(tmp.join("srv"), args);
    await using chromium = await launchChromium();
    const { page, errors } = await openPage(chromium, `${first.base}/`);
    await (await page.$("#file-input"))!.uploadFile(source);
    // The server checkpoints a long request every 64 MiB: by now it has
    // received more than that, so a kill leaves bytes to resume from.
    await sentMoreThan(page, 100 * MiB);
    first.server.kill("SIGKILL");
    await first.server.exited;
    await using _second = await httpServer(tmp.join("srv"), args);

    const [item] = await settled(page, 1);
    assert.equal(item!.phase, "verified", item!.status);
    assert.ok(
      item!.resumedFrom! > 0 && item!.resumedFrom! < 200 * MiB,
      `resumed from ${item!.resumedFrom}`,
    );
    assert.equal(item!.sha256, expected);
    assert.equal(
      item!.digest,
      expected,
      "the page shows what sha256sum prints",
    );
    assert.ok(await sameBytes(source, tmp.join("srv", "video.bin")));
    assert.deepEqual(errors, []);
  },
);

browserTest(
  "a reloaded page remembers the upload in flight and resumes it once the file is picked again",
  async () => {
    await using tmp = await tempDir();
    const source = tmp.join("disk.img");
    await writeRandomFile(source, 64 * MiB);
    await using srv = await httpServer(tmp.join("srv"), ["--no-fsync"]);
    await using link = await slowLink(srv.port);
    await using chromium = await launchChromium();
    const { page, errors } = await openPage(chromium, link.url);
    await (await page.$("#file-input"))!.uploadFile(source);
    // A request cut by the reload leaves what arrived with the server.
    await sentMoreThan(page, 32 * MiB);
    await page.reload({ waitUntil: "load" });
    await page.waitForSelector("#queue li.item[data-phase=needs-file]");
    const [waiting] = await items(page);
    assert.match(waiting!.status, /pick the file again/);

    await (await page.$("#file-input"))!.uploadFile(source);
    const done = await settled(page, 1);
    assert.equal(done.length, 1, "the picked file went back to its row");
    assert.equal(done[0]!.phase, "verified", done[0]!.status);
    assert.ok(
      done[0]!.resumedFrom! > 0 && done[0]!.resumedFrom! < 64 * MiB,
      `resumed from ${done[0]!.resumedFrom}`,
    );
    assert.ok(await sameBytes(source, tmp.join("srv", "disk.img")));
    assert.deepEqual(errors, []);
  },
);

browserTest("a folder upload keeps the tree, every file verified", async () => {
  await using tmp = await tempDir();
  const tree = {
    "album/cover.txt": 1000,
    "album/empty.txt": 0,
    "album/raw/one.bin": 3 * MiB + 5,
    "album/raw/deeper/two.bin": 70_000,
    "album/notes/ü n i c o d e.md": 12,
  };
  for (const [name, size] of Object.entries(tree)) {
    await Deno.mkdir(tmp.join(...name.split("/").slice(0, -1)), {
      recursive: true,
    });
    await writeRandomFile(tmp.join(name), size);
  }
  await using srv = await httpServer(tmp.join("srv"));
  await using chromium = await launchChromium();
  const { page, errors } = await openPage(chromium, `${srv.base}/`);
  await (await page.$("#folder-input"))!.uploadFile(tmp.join("album"));
  const done = await settled(page, Object.keys(tree).length);
  assert.deepEqual(
    done.map((item) => [item.name, item.phase]).sort(),
    Object.keys(tree).map((name) => [name, "verified"]).sort(),
  );
  for (const name of Object.keys(tree)) {
    assert.ok(await sameBytes(tmp.join(name), tmp.join("srv", name)), name);
  }
  assert.deepEqual(errors, []);
});

browserTest(
  "with a token: a wrong one is told clearly and stores nothing; the right one lists, downloads and checks",
  async () => {
    await using tmp = await tempDir();
    const source = tmp.join("report.pdf");
    await writeRandomFile(source, 5 * MiB + 3);
    const token = "right-token-123";
    await using srv = await httpServer(tmp.join("srv"), ["--token", token]);
    await using chromium = await launchChromium();
    const { page, errors } = await openPage(chromium, `${srv.base}/`);
    await page.waitForSelector("#login:not([hidden])");

    await page.type("#token", "wrong-token");
    await page.click("#login-submit");
    const message = await textOf(page, "#login-error");
    assert.match(message, /refused this token \(wrong token\)/);
    await (await page.$("#file-input"))!.uploadFile(source);
    const [refused] = await settled(page, 1, 30_000);
    assert.equal(refused!.phase, "failed");
    assert.match(refused!.status, /token/);
    assert.deepEqual(
      (await listDir(tmp.join("srv"))).filter((name) => name !== ".ftv"),
      [],
      "nothing stored, no part file",
    );

    await page.click("#token", { count: 3 });
    await page.type("#token", token);
    await page.click("#login-submit");
    await page.waitForSelector("#login[hidden]");
    // Logging in retries what the missing token refused.
    const [sent] = await settled(page, 1);
    assert.equal(sent!.phase, "verified", sent!.status);
    await downloadThroughPage(page, tmp.join("downloads"), "report.pdf");
    assert.ok(
      await sameBytes(source, tmp.join("downloads", "report.pdf")),
      "the download is the same bytes",
    );

    await (await page.$("#check-input"))!.uploadFile(source);
    await page.waitForSelector("#check-results li[data-held]");
    assert.equal(
      await page.$eval("#check-results li", (li) => li.dataset.held),
      "true",
    );
    const other = tmp.join("report-v2.pdf");
    await writeRandomFile(other, 1000);
    await (await page.$("#check-input"))!.uploadFile(other);
    await until(
      "a second check",
      () => page.$$("#check-results li[data-held]"),
      (rows) => rows.length === 2,
    );
    assert.equal(
      await page.$eval("#check-results li", (li) => li.dataset.held),
      "false",
    );
    assert.deepEqual(errors, []);
  },
);

/** Clicks the listing's link to `name` and waits for Chromium to save it in `folder`. */
async function downloadThroughPage(page: Page, folder: string, name: string) {
  await Deno.mkdir(folder, { recursive: true });
  const cdp = await page.createCDPSession();
  await cdp.send("Browser.setDownloadBehavior", {
    behavior: "allow",
    downloadPath: folder,
    eventsEnabled: true,
  });
  const finished = new Promise<string>((resolve) =>
    cdp.on("Browser.downloadProgress", (event) => {
      if (event.state !== "inProgress") resolve(event.state);
    })
  );
  const link = `#listing tr.file[data-name="${name}"] a[download]`;
  await page.waitForSelector(link);
  const href = await page.$eval(link, (a) => a.getAttribute("href")!);
  assert.match(href, /\?exp=\d+&sig=[0-9a-f]{64}$/, "a signed link");
  await page.click(link);
  assert.equal(await finished, "completed");
  await cdp.detach();
  assert.ok(await exists(`${folder}/${name}`));
}

/** The serious and critical violations axe-core finds on `page`. */
async function axeViolations(page: Page): Promise<string[]> {
  await page.evaluate(axe.source);
  const found = await page.evaluate(
    `axe.run(document, { resultTypes: ["violations"] }).then((r) =>
      r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => n.target.join(" ")) })))`,
  ) as { id: string; impact: string; help: string; nodes: string[] }[];
  return found.filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.join(", ")}`);
}

const ARTIFACTS = new URL("../test-artifacts/", import.meta.url).pathname;

browserTest(
  "axe finds no serious or critical problem, light and dark, desktop and phone; screenshots are written",
  async () => {
    await using tmp = await tempDir();
    await using srv = await httpServer(tmp.join("srv"));
    const stored = {
      "photos/2024/beach.jpg": 2 * MiB + 77,
      "photos/2024/dunes.jpg": 1_500_000,
      "isos/debian-12.iso": 4 * MiB,
      "notes.txt": 1200,
    };
    for (const [name, size] of Object.entries(stored)) {
      await writeRandomFile(tmp.join("put.bin"), size);
      const put = await fetch(`${srv.base}/files/${name}`, {
        method: "PUT",
        body: await Deno.readFile(tmp.join("put.bin")),
      });
      assert.equal(put.status, 201);
      await put.body?.cancel();
    }
    const source = tmp.join("holiday.mov");
    await writeRandomFile(source, 6 * MiB);
    await using chromium = await launchChromium();
    const { page, errors } = await openPage(chromium, `${srv.base}/`);
    await (await page.$("#file-input"))!.uploadFile(source);
    await settled(page, 1);
    await page.waitForSelector('#listing tr.file[data-name="holiday.mov"]');
    await page.click("body");
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const problems: string[] = [];
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMediaFeatures([
        { name: "prefers-color-scheme", value: scheme },
      ]);
      for (
        const [device, width, height] of [["desktop", 1280, 800], [
          "phone",
          390,
          844,
        ]] as const
      ) {
        await page.setViewport({ width, height, deviceScaleFactor: 1 });
        problems.push(
          ...(await axeViolations(page)).map((p) =>
            `${scheme} ${device}: ${p}`
          ),
        );
        await page.screenshot({
          path: `${ARTIFACTS}web-${device}-${scheme}.png`,
          fullPage: true,
        });
      }
    }
    await page.click("#qr-open");
    await page.waitForSelector("#qr-code svg");
    problems.push(...(await axeViolations(page)).map((p) => `dialog: ${p}`));
    await page.screenshot({ path: `${ARTIFACTS}web-phone-dark-qr.png` });
    await page.keyboard.press("Escape");
    assert.deepEqual(problems, []);
    assert.deepEqual(errors, []);
  },
);

browserTest(
  "pause stops sending and resume goes on from there; cancel makes the server forget the upload",
  async () => {
    await using tmp = await tempDir();
    const source = tmp.join("big.bin");
    await writeRandomFile(source, 96 * MiB);
    const other = tmp.join("other.bin");
    await writeRandomFile(other, 64 * MiB);
    await using srv = await httpServer(tmp.join("srv"), ["--no-fsync"]);
    await using link = await slowLink(srv.port);
    await using chromium = await launchChromium();
    const { page, errors } = await openPage(chromium, link.url);
    await (await page.$("#file-input"))!.uploadFile(source);
    await sentMoreThan(page, 32 * MiB);
    await page.click('#queue button[aria-label="Pause big.bin"]');
    const [paused] = await until(
      "the upload paused",
      () => items(page),
      (rows) => rows[0]?.phase === "paused",
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const [still] = await items(page);
    assert.equal(still!.sent, paused!.sent, "nothing is sent while paused");
    assert.ok(still!.sent < 96 * MiB);
    await page.click('#queue button[aria-label="Resume big.bin"]');
    const [resumed] = await settled(page, 1);
    assert.equal(resumed!.phase, "verified", resumed!.status);
    assert.ok(
      resumed!.resumedFrom! > 0 && resumed!.resumedFrom! < 96 * MiB,
      `resumed from ${resumed!.resumedFrom}`,
    );
    assert.ok(await sameBytes(source, tmp.join("srv", "big.bin")));

    await (await page.$("#file-input"))!.uploadFile(other);
    await until(
      "the second upload under way",
      () => items(page),
      (rows) => (rows[1]?.sent ?? 0) > 4 * MiB,
    );
    await page.click('#queue button[aria-label="Cancel other.bin"]');
    await until(
      "the upload cancelled and forgotten",
      async () => ({
        rows: await items(page),
        part: await exists(tmp.join("srv", "other.bin.ftv-part")),
        records: await listDir(tmp.join("srv", ".ftv", "uploads")),
      }),
      ({ rows, part, records }) =>
        rows[1]?.phase === "cancelled" && !part && records.length === 0,
      { timeoutMs: 10_000 },
    );
    assert.equal(await exists(tmp.join("srv", "other.bin")), false);
    assert.deepEqual(errors, []);
  },
);
