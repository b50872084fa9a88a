/// <reference lib="dom" />
/**
 * The page served at `/` by `ftv server --http PORT`: wires the store view,
 * the upload queue, the local check, the token login and the QR dialog to
 * the elements of `web/page.html`. Bundled by `deno task web:build` into
 * `web/assets.ts`, which the server serves.
 *
 * @module
 */

import {
  ApiError,
  type Listing,
  listStore,
  savedToken,
  saveToken,
  serverInfo,
} from "./api.ts";
import { currentFolder, renderCrumbs, renderListing } from "./browse.ts";
import { checkFiles } from "./check.ts";
import { announce, byId } from "./dom.ts";
import { formatBytes } from "./format.ts";
import { HashPool } from "./hashing.ts";
import { fileOfHandle, loadHandle } from "./persist.ts";
import { dropZone, inputFiles } from "./pick.ts";
import { showQr } from "./qr.ts";
import { isActive, type Picked, type QueueItem, UploadQueue } from "./queue.ts";
import { QueueView } from "./queue_view.ts";

const pool = new HashPool("/web/hash_worker.js");
const queue = new UploadQueue(pool);
let listing: Listing = { files: [], dirs: [] };
let listed = false;

function setStatus(text: string, error = false): void {
  const status = byId("status");
  status.textContent = text;
  status.classList.toggle("error", error);
}

/** Reads the store again and redraws the view; shows the login when the token is refused. */
async function refresh(): Promise<Listing> {
  try {
    listing = await listStore();
    listed = true;
    const bytes = listing.files.reduce((sum, file) => sum + file.size, 0);
    setStatus(`${listing.files.length} files, ${formatBytes(bytes)} stored`);
    await drawStore();
  } catch (error) {
    if (error instanceof ApiError && error.unauthorized) {
      showLogin(savedToken() === undefined ? "" : loginError(error));
    } else {
      setStatus(`Cannot read the store: ${(error as Error).message}`, true);
    }
  }
  return listing;
}

async function drawStore(): Promise<void> {
  const prefix = currentFolder();
  renderCrumbs(byId("crumbs"), prefix);
  byId("target").textContent = prefix === "" ? "the top folder" : prefix;
  const filter = byId<HTMLInputElement>("filter").value;
  if (listed) await renderListing(byId("listing"), listing, prefix, filter);
}

function loginError(error: ApiError): string {
  return error.code === "unauthorized"
    ? `The server refused this token (${
      error.message.replace(/^Cannot [^:]*: /, "")
    }). Check it and try again.`
    : `Cannot log in: ${error.message}`;
}

function showLogin(message: string): void {
  const section = byId("login");
  section.hidden = false;
  byId("logout").hidden = true;
  byId("login-error").textContent = message;
  setStatus("This server needs its token: log in below.", message !== "");
  byId<HTMLInputElement>("token").focus();
}

async function logIn(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const input = byId<HTMLInputElement>("token");
  const token = input.value.trim();
  const error = byId("login-error");
  const submit = byId<HTMLButtonElement>("login-submit");
  error.textContent = "";
  submit.disabled = true;
  submit.textContent = "Checking…";
  try {
    listing = await listStore(token);
    saveToken(token);
    input.value = "";
    byId("login").hidden = true;
    byId("logout").hidden = false;
    announce("Logged in");
    queue.retryFailed(401);
    await refresh();
  } catch (failure) {
    error.textContent = failure instanceof ApiError
      ? loginError(failure)
      : `Cannot log in: ${(failure as Error).message}`;
    input.select();
  } finally {
    submit.disabled = false;
    submit.textContent = "Log in";
  }
}

function addFiles(picked: Picked[]): void {
  const before = queue.items.length;
  queue.add(picked, currentFolder());
  const added = queue.items.length - before;
  announce(
    `${added} file${added === 1 ? "" : "s"} added to the queue` +
      (picked.length > added
        ? `; ${picked.length - added} resumed or already there`
        : ""),
  );
}

/** A button that opens the file input it controls. */
function picker(
  buttonId: string,
  inputId: string,
  take: (p: Picked[]) => void,
) {
  const input = byId<HTMLInputElement>(inputId);
  byId(buttonId).addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    take(inputFiles(input));
    input.value = "";
  });
}

async function reopen(item: QueueItem): Promise<void> {
  const file = item.handle ? await fileOfHandle(item.handle) : undefined;
  if (
    file && file.size === item.size && file.lastModified === item.lastModified
  ) {
    queue.attach(item, file);
  } else {
    item.handle = undefined;
    announce(`Cannot open ${item.name} again: pick it`);
    byId("pick-files").click();
  }
}

function wireUploads(): void {
  new QueueView(byId("queue"), queue, {
    pickAgain: () => byId("pick-files").click(),
    reopen: (item) => void reopen(item),
  });
  picker("pick-files", "file-input", addFiles);
  picker("pick-folder", "folder-input", addFiles);
  dropZone(byId("drop"), (files) => void files.then(addFiles));
  // New files show in the store view, read again at most once a second.
  let verified = queue.items.filter((i) => i.phase.type === "verified").length;
  let pending: ReturnType<typeof setTimeout> | undefined;
  queue.addEventListener("change", () => {
    const now = queue.items.filter((i) => i.phase.type === "verified").length;
    if (now !== verified && pending === undefined) {
      pending = setTimeout(() => {
        pending = undefined;
        void refresh();
      }, 1000);
    }
    verified = now;
  });
  addEventListener("online", () => queue.retryFailed(0));
  addEventListener("beforeunload", (event) => {
    if (queue.items.some(isActive)) event.preventDefault();
  });
  for (const item of queue.items) {
    if (item.phase.type !== "needs-file") continue;
    void loadHandle(item.id).then((handle) => {
      if (!handle) return;
      item.handle = handle;
      queue.dispatchEvent(new Event("change"));
    });
  }
}

function wireCheck(): void {
  const results = byId("check-results");
  const check = (picked: Picked[]) =>
    void checkFiles(results, picked, pool, refresh);
  picker("check-pick", "check-input", check);
  dropZone(byId("check-drop"), (files) => void files.then(check));
}

function wirePage(): void {
  byId("login-form").addEventListener(
    "submit",
    (e) => void logIn(e as SubmitEvent),
  );
  byId("logout").addEventListener("click", () => {
    saveToken(undefined);
    showLogin("");
  });
  const dialog = byId<HTMLDialogElement>("qr-dialog");
  byId("qr-open").addEventListener("click", () => {
    showQr(byId("qr-code"), byId("qr-url"), byId("qr-note"));
    dialog.showModal();
  });
  byId("qr-close").addEventListener("click", () => dialog.close());
  addEventListener("hashchange", () => void drawStore());
  byId("filter").addEventListener("input", () => void drawStore());
  byId("refresh").addEventListener("click", () => void refresh());
}

async function start(): Promise<void> {
  wirePage();
  wireUploads();
  wireCheck();
  await drawStore();
  try {
    const info = await serverInfo();
    byId("version").textContent = info.version;
    if (info.token && savedToken() === undefined) {
      showLogin("");
      return;
    }
    byId("logout").hidden = !info.token;
    await refresh();
  } catch (error) {
    setStatus(`Cannot reach the server: ${(error as Error).message}`, true);
  }
}

void start();
