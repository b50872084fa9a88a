/// <reference lib="dom" />
/**
 * The upload queue on the page: a total line (files, bytes, rate, time
 * left) with pause, resume and clear buttons, then one row per file with
 * its progress bar, rate and ETA, how far hashing got, its phase in words
 * and the buttons that phase allows. Rows are updated in place (at most
 * once a frame), so keyboard focus stays where it was. Each row carries
 * `data-` attributes with its state, which the browser tests read.
 *
 * @module
 */

import { announce, el, fill } from "./dom.ts";
import {
  etaSeconds,
  formatBytes,
  formatDuration,
  formatRate,
} from "./format.ts";
import {
  isActive,
  isUnfinished,
  type QueueItem,
  type UploadQueue,
} from "./queue.ts";

/** What the rows' buttons need from the page. */
export interface QueueActions {
  /** Asks the user for the file a waiting item needs. */
  pickAgain(item: QueueItem): void;
  /** Opens the file of a waiting item through its kept handle. */
  reopen(item: QueueItem): void;
}

/** Shortest time between two redraws, in ms. */
const REDRAW_MS = 250;

interface Row {
  li: HTMLLIElement;
  progress: HTMLProgressElement;
  status: HTMLElement;
  detail: HTMLElement;
  actions: HTMLElement;
  /** The phase the buttons were drawn for. */
  drawn: string;
}

/** Draws `queue` into `root`. */
export class QueueView {
  readonly #root: HTMLElement;
  readonly #queue: UploadQueue;
  readonly #actions: QueueActions;
  readonly #rows = new Map<string, Row>();
  readonly #list = el("ul", { class: "queue", "aria-label": "Uploads" });
  readonly #total = el("p", { class: "total", id: "queue-total" });
  readonly #totalBar = el("progress", {
    "aria-labelledby": "queue-total",
    max: 1,
    value: 0,
  });
  readonly #bulk = el("div", { class: "buttons" });
  /** The bulk buttons drawn (which of pause, resume, clear). */
  #bulkDrawn = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #last = 0;

  constructor(root: HTMLElement, queue: UploadQueue, actions: QueueActions) {
    this.#root = root;
    this.#queue = queue;
    this.#actions = actions;
    fill(
      root,
      el("div", { class: "summary" }, this.#total, this.#totalBar, this.#bulk),
      this.#list,
    );
    queue.addEventListener("change", () => this.schedule());
    this.schedule();
  }

  /**
   * Redraws soon: at most every {@linkcode REDRAW_MS}, on a frame. Progress
   * events come far more often, and redrawing on each frame cost as much CPU
   * as a third of the hashing.
   */
  schedule(): void {
    if (this.#timer !== undefined) return;
    const wait = Math.max(0, this.#last + REDRAW_MS - performance.now());
    this.#timer = setTimeout(() =>
      requestAnimationFrame(() => {
        this.#timer = undefined;
        this.#last = performance.now();
        this.render();
      }), wait);
  }

  /** Redraws now. */
  render(): void {
    const items = this.#queue.items;
    this.#root.hidden = items.length === 0;
    this.#renderTotal(items);
    const seen = new Set<string>();
    for (const item of items) {
      seen.add(item.id);
      let row = this.#rows.get(item.id);
      if (!row) {
        row = this.#newRow(item);
        this.#rows.set(item.id, row);
        this.#list.append(row.li);
      }
      this.#update(row, item);
    }
    for (const [id, row] of this.#rows) {
      if (seen.has(id)) continue;
      row.li.remove();
      this.#rows.delete(id);
    }
  }

  #renderTotal(items: readonly QueueItem[]): void {
    const counted = items.filter((item) => item.phase.type !== "cancelled");
    const bytes = counted.reduce((sum, item) => sum + item.size, 0);
    const sent = counted.reduce((sum, item) => sum + item.sent, 0);
    const verified = counted.filter((i) => i.phase.type === "verified").length;
    const rate = items.filter(isActive).reduce(
      (sum, item) => sum + item.meter.rate(),
      0,
    );
    const running = items.some(isActive);
    this.#total.textContent =
      `${verified} of ${counted.length} files verified · ${
        formatBytes(sent)
      } of ${formatBytes(bytes)}` +
      (running
        ? ` · ${formatRate(rate)} · ${
          formatDuration(etaSeconds(bytes - sent, rate))
        } left`
        : "");
    this.#totalBar.max = Math.max(bytes, 1);
    this.#totalBar.value = sent;
    const paused = items.some((i) => i.phase.type === "paused");
    const finished = items.some((i) => !isUnfinished(i));
    const drawn = `${running} ${paused} ${finished}`;
    if (drawn === this.#bulkDrawn) return;
    this.#bulkDrawn = drawn;
    fill(
      this.#bulk,
      running &&
        button("Pause all", () => void this.#queue.pauseAll()),
      paused && button("Resume all", () => this.#queue.resumeAll()),
      finished &&
        button("Clear finished", () => this.#queue.clearFinished()),
    );
  }

  #newRow(item: QueueItem): Row {
    const progress = el("progress", {
      max: Math.max(item.size, 1),
      value: 0,
      "aria-label": `Upload of ${item.name}`,
    });
    const status = el("p", { class: "status" });
    const detail = el("p", { class: "detail" });
    const actions = el("div", { class: "buttons" });
    const li = el(
      "li",
      { class: "item", "data-id": item.id, "data-name": item.name },
      el(
        "div",
        { class: "head" },
        el("span", { class: "name" }, item.name),
        el("span", { class: "size" }, formatBytes(item.size)),
      ),
      progress,
      status,
      detail,
      actions,
    );
    return { li, progress, status, detail, actions, drawn: "" };
  }

  #update(row: Row, item: QueueItem): void {
    const { phase } = item;
    row.li.dataset.phase = phase.type;
    row.li.dataset.sent = String(item.sent);
    row.li.dataset.accepted = String(item.accepted);
    if (item.resumedFrom !== undefined) {
      row.li.dataset.resumedFrom = String(item.resumedFrom);
    }
    if (phase.type === "verified") row.li.dataset.sha256 = phase.sha256;
    row.progress.value = phase.type === "verified" ? item.size : item.sent;
    row.status.textContent = statusText(item);
    row.status.classList.toggle("ok", phase.type === "verified");
    row.status.classList.toggle("error", phase.type === "failed");
    fill(row.detail, ...detailOf(item));
    if (row.drawn !== phase.type + (item.handle ? "+handle" : "")) {
      const hadFocus = row.actions.contains(document.activeElement);
      row.drawn = phase.type + (item.handle ? "+handle" : "");
      fill(row.actions, ...this.#buttons(item));
      if (hadFocus) {
        (row.actions.querySelector("button") ?? row.li).focus();
      }
      if (phase.type === "verified") announce(`${item.name} verified`);
      if (phase.type === "failed") announce(`${item.name} failed`);
    }
  }

  #buttons(item: QueueItem): HTMLButtonElement[] {
    const queue = this.#queue;
    const label = (verb: string) => `${verb} ${item.name}`;
    switch (item.phase.type) {
      case "queued":
      case "running":
      case "retrying":
      case "finishing":
        return [
          button("Pause", () => void queue.pause(item), label("Pause")),
          button("Cancel", () => void queue.cancel(item), label("Cancel")),
        ];
      case "paused":
      case "failed":
        return [
          button(
            item.phase.type === "paused" ? "Resume" : "Retry",
            () => queue.resume(item),
            label(item.phase.type === "paused" ? "Resume" : "Retry"),
          ),
          button("Cancel", () => void queue.cancel(item), label("Cancel")),
        ];
      case "needs-file":
        return [
          item.handle
            ? button(
              "Resume",
              () => this.#actions.reopen(item),
              label("Resume"),
            )
            : button(
              "Pick the file again",
              () => this.#actions.pickAgain(item),
              label("Pick again the file for"),
            ),
          button("Cancel", () => void queue.cancel(item), label("Cancel")),
        ];
      default:
        return [];
    }
  }
}

function button(
  text: string,
  onClick: () => void,
  ariaLabel?: string,
): HTMLButtonElement {
  return el("button", {
    type: "button",
    onclick: onClick,
    ...(ariaLabel ? { "aria-label": ariaLabel } : {}),
  }, text);
}

/** The phase of `item` in words. */
function statusText(item: QueueItem): string {
  const { phase } = item;
  const percent = item.size > 0 ? Math.floor(item.sent / item.size * 100) : 100;
  switch (phase.type) {
    case "queued":
      return "Waiting to send";
    case "running": {
      const rate = item.meter.rate();
      const eta = formatDuration(etaSeconds(item.size - item.sent, rate));
      return `Sending: ${percent}%` +
        (rate > 0 ? ` · ${formatRate(rate)} · ${eta} left` : "");
    }
    case "retrying":
      return `Connection lost at ${percent}% (${phase.reason}); trying again…`;
    case "finishing":
      return item.sha256
        ? "Sent; the server is checking the SHA-256…"
        : "Sent; finishing the SHA-256 here…";
    case "paused":
      return `Paused at ${percent}%`;
    case "needs-file":
      return item.handle
        ? `Interrupted at ${percent}%: resume to go on`
        : `Interrupted at ${percent}%: pick the file again to go on`;
    case "verified":
      return "Verified: the server's SHA-256 equals this browser's";
    case "failed":
      return `Failed: ${phase.reason}`;
    case "cancelled":
      return "Cancelled";
  }
}

/** What else a row says: the digest once verified, or how far hashing got. */
function detailOf(item: QueueItem): (Node | string)[] {
  const { phase } = item;
  if (phase.type === "verified") {
    return ["SHA-256 ", el("code", { class: "digest" }, phase.sha256)];
  }
  const parts: (Node | string)[] = [];
  if (item.resumedFrom !== undefined) {
    parts.push(`Resumed from ${formatBytes(item.resumedFrom)}. `);
  }
  if (isUnfinished(item) && item.size > 0 && !item.sha256) {
    parts.push(
      `SHA-256 read so far: ${Math.floor(item.hashed / item.size * 100)}%`,
    );
  }
  return parts;
}
