/**
 * Headless Chromium for the web page's tests and bench: the system's
 * browser (Debian's `chromium`; puppeteer's own browser downloads are not
 * used) driven over the DevTools protocol by puppeteer-core, with a fresh
 * profile each launch and no traffic of its own (no updates, sync or
 * background requests).
 *
 * @module
 */

import puppeteer, { type Browser, type Page } from "puppeteer-core";

/** Where Chromium is looked for, first `FTV_CHROMIUM`. */
const CANDIDATES = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
];

/** What to install when no Chromium is found. */
export const CHROMIUM_HINT =
  "install Debian's chromium (apt-get install chromium) or set FTV_CHROMIUM";

/** The Chromium executable, or `undefined` when this machine has none. */
export function findChromium(): string | undefined {
  let fromEnv: string | undefined;
  try {
    fromEnv = Deno.env.get("FTV_CHROMIUM");
  } catch {
    // No --allow-env: only the usual places.
  }
  for (const path of [fromEnv, ...CANDIDATES]) {
    if (!path) continue;
    try {
      if (Deno.statSync(path).isFile) return path;
    } catch {
      // Not there.
    }
  }
  return undefined;
}

/** A running headless Chromium with its own profile, closed and removed on dispose. */
export interface Chromium extends AsyncDisposable {
  readonly browser: Browser;
  /** The process id of the browser. */
  readonly pid: number | undefined;
}

/** Launches headless Chromium. */
export async function launchChromium(): Promise<Chromium> {
  const executablePath = findChromium();
  if (!executablePath) {
    throw new Error(`Cannot launch Chromium: none found; ${CHROMIUM_HINT}`);
  }
  const profile = await Deno.makeTempDir({ prefix: "ftv-chromium-" });
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
      `--user-data-dir=${profile}`,
    ],
  });
  return {
    browser,
    pid: browser.process()?.pid,
    async [Symbol.asyncDispose]() {
      await browser.close().catch(() => undefined);
      await Deno.remove(profile, { recursive: true }).catch(() => undefined);
    },
  };
}

/**
 * A new tab on `url` whose script errors are collected (`errors`), and
 * whose dialogs (a `beforeunload` prompt) are accepted.
 */
export async function openPage(
  chromium: Chromium,
  url: string,
): Promise<{ page: Page; errors: string[] }> {
  const page = await chromium.browser.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push((error as Error).message));
  page.on("dialog", (dialog) => void dialog.accept());
  await page.goto(url, { waitUntil: "load" });
  return { page, errors };
}
