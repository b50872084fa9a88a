/**
 * The web page's rows: headless Chromium (the system's, driven by
 * puppeteer-core) opens `ftv server --http`'s page and uploads the random
 * file through it (`web-put`), hashing it in the page as it goes, until the
 * page says verified; to compare with the `http-put` row (`curl -T`) of the
 * same run. `web-xhr` is Chromium's own ceiling here: one plain
 * `XMLHttpRequest` PUT of the same file from the same page, with no hashing
 * and no tus. The client's RSS is the page's renderer process (the tab, its
 * hashing workers included) at its peak; its CPU is every Chromium
 * process's. Each run also logs the tab's RSS before and at its peak, and
 * its JavaScript heap, to show that memory stays flat whatever the size.
 *
 * @module
 */

import { formatBytes } from "../../base/bytes.ts";
import type { Page } from "puppeteer-core";
import {
  type Chromium,
  CHROMIUM_HINT,
  findChromium,
  launchChromium,
  openPage,
} from "../browser.ts";
import { BenchError, HOST } from "./common.ts";
import { againstServer, usageFields } from "./ftv_rows.ts";
import { type Context, type Row, type Sample, skippedRow } from "./rows.ts";
import { discard, freshDir } from "./set_aside.ts";
import { checkCopy } from "./sources.ts";
import { runCommand } from "./processes.ts";
import { vmHwm } from "./system.ts";

/** One of the page's rows. */
interface WebPlan {
  id: string;
  label: string;
  /** Uploads the file set in the page's file input; resolves once it is stored. */
  upload(page: Page, deadline: number): Promise<void>;
}

const PLANS: readonly WebPlan[] = [
  {
    id: "web-put",
    label: "web page upload (Chromium, HTTP)",
    upload: pageUpload,
  },
  {
    id: "web-xhr",
    label: "plain XHR PUT from Chromium (no hash, no tus)",
    upload: xhrUpload,
  },
];

/** The web page's rows `--only` asks for, sharing one browser. */
export function webRows(ctx: Context): Row[] {
  const plans = PLANS.filter((plan) => ctx.options.only.has(plan.id));
  if (!findChromium()) {
    return plans.map((plan) =>
      skippedRow(plan.id, plan.label, CHROMIUM_HINT, "ftv")
    );
  }
  let chromium: Promise<Chromium> | undefined;
  const browser = () => chromium ??= launchChromium();
  return plans.map((plan, index) => ({
    id: plan.id,
    label: plan.label,
    kind: "ftv" as const,
    samples: [],
    run: async (run: number) => webRun(ctx, plan, await browser(), run),
    ...(index === 0
      ? {
        teardown: async () => {
          if (chromium) await (await chromium)[Symbol.asyncDispose]();
        },
      }
      : {}),
  }));
}

/** The page's own way: the queue, hashing as it sends, until verified. */
async function pageUpload(page: Page, deadline: number): Promise<void> {
  let phase = "";
  while (performance.now() < deadline) {
    phase = await page.$eval(
      "#queue li.item",
      (li) => li.getAttribute("data-phase") ?? "",
    ).catch(() => "");
    if (phase === "verified" || phase === "failed") break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  if (phase !== "verified") {
    throw new BenchError(`the page did not end verified (${phase})`);
  }
}

/** Chromium's own ceiling: one XHR PUT of the picked file, nothing else. */
async function xhrUpload(page: Page): Promise<void> {
  const status = await page.evaluate(`new Promise((resolve) => {
    const file = document.getElementById("bench-raw").files[0];
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", "/files/" + encodeURIComponent(file.name));
    xhr.onloadend = () => resolve(xhr.status);
    xhr.send(file);
  })`);
  if (status !== 201) throw new BenchError(`the PUT answered ${status}`);
}

/** What /proc says about Chromium's processes. */
interface Processes {
  /** CPU seconds of all of them. */
  cpu: number;
  /** CPU seconds by kind of process (browser, renderer, network, gpu...). */
  byKind: Map<string, number>;
  /** The renderers' resident and peak resident bytes. */
  renderers: { pid: number; rss: number; peak: number }[];
}

/** Chromium's process `root` and its descendants (read through `ps` and `cat`, see `system.ts`). */
async function processes(root: number): Promise<Processes> {
  const ps = await runCommand(
    "ps",
    ["-e", "-o", "pid=,ppid=,rss=,args="],
    10_000,
  );
  const rows = ps.stdout.trim().split("\n").map((line) => {
    const [pid, ppid, rss, ...args] = line.trim().split(/\s+/);
    return {
      pid: Number(pid),
      ppid: Number(ppid),
      rss: Number(rss) * 1024,
      args: args.join(" "),
    };
  });
  const parent = new Map(rows.map((row) => [row.pid, row.ppid]));
  const ours = (pid: number): boolean => {
    for (let p = pid, hops = 0; p > 1 && hops < 10; hops++) {
      if (p === root) return true;
      p = parent.get(p) ?? 0;
    }
    return false;
  };
  const found: Processes = { cpu: 0, byKind: new Map(), renderers: [] };
  for (const row of rows.filter((r) => ours(r.pid))) {
    const stat = await runCommand("cat", [`/proc/${row.pid}/stat`], 10_000);
    const fields = stat.stdout.slice(stat.stdout.lastIndexOf(")") + 2).split(
      " ",
    );
    const cpu = (Number(fields[11]) + Number(fields[12])) / 100 || 0;
    const kind = processKind(row.args);
    found.cpu += cpu;
    found.byKind.set(kind, (found.byKind.get(kind) ?? 0) + cpu);
    if (!row.args.includes("--type=renderer")) continue;
    const peak = (await vmHwm(row.pid) ?? 0) * 1024;
    found.renderers.push({ pid: row.pid, rss: row.rss, peak });
  }
  return found;
}

/** A Chromium process's kind, from its `--type` (and utility sub-type). */
function processKind(args: string): string {
  const type = /--type=(\S+)/.exec(args)?.[1];
  if (type === undefined) return "browser";
  if (type !== "utility") return type;
  return /--utility-sub-type=\w+\.mojom\.(\w+)/.exec(args)?.[1] ?? type;
}

/** CPU seconds spent between `before` and `after`, by process kind, the largest first. */
function cpuSplit(before: Processes, after: Processes): string {
  return [...after.byKind]
    .map(([kind, cpu]) => [kind, cpu - (before.byKind.get(kind) ?? 0)] as const)
    .filter(([, cpu]) => cpu >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([kind, cpu]) => `${kind} ${cpu.toFixed(1)}`)
    .join(", ");
}

async function webRun(
  ctx: Context,
  plan: WebPlan,
  chromium: Chromium,
  index: number,
): Promise<Sample> {
  const dir = await freshDir(`${ctx.work}/ftv-web`);
  const name = ctx.source.path.slice(ctx.source.path.lastIndexOf("/") + 1);
  const { value, server } = await againstServer(
    dir,
    { serverFlags: ["--http", "0"] },
    async (_port, process) => {
      const base = `http://${HOST}:${process.httpPort}/`;
      const { page, errors } = await openPage(chromium, base);
      // The plain PUT takes its file from an input the page does not watch.
      await page.evaluate(`document.body.append(Object.assign(
        document.createElement("input"), { type: "file", id: "bench-raw" }))`);
      const input = await page.$(
        plan.id === "web-put" ? "#file-input" : "#bench-raw",
      );
      if (!input) throw new BenchError("the page has no file input");
      const before = await processes(chromium.pid!);
      const tab = before.renderers.at(-1);
      const started = performance.now();
      await input.uploadFile(ctx.source.path);
      await plan.upload(page, started + ctx.timeout(ctx.source.size));
      const ms = performance.now() - started;
      const after = await processes(chromium.pid!);
      const heap = (await page.metrics()).JSHeapUsedSize ?? 0;
      await page.close();
      if (errors.length > 0) {
        throw new BenchError(`the page failed: ${errors.join("; ")}`);
      }
      const peak = after.renderers.find((r) => r.pid === tab?.pid)?.peak ?? 0;
      console.error(
        `  tab: ${formatBytes(tab?.rss ?? 0)} RSS before, ${
          formatBytes(peak)
        } at its peak, JS heap ${formatBytes(heap)} after ${
          formatBytes(ctx.source.size)
        }; Chromium ${(after.cpu - before.cpu).toFixed(1)} CPU-s (${
          cpuSplit(before, after)
        })`,
      );
      return { ms, rssKiB: peak / 1024, cpu: after.cpu - before.cpu };
    },
  );
  await checkCopy(`${dir}/${name}`, ctx.source, index === 0, plan.label);
  await discard(dir);
  return {
    ms: value.ms,
    bytes: ctx.source.size,
    ...usageFields(server, [{
      ms: 0,
      rss: value.rssKiB,
      cpu: value.cpu,
      result: {},
    }]),
  };
}
