/// <reference lib="dom" />
/**
 * The store as a folder view: a breadcrumb trail, a filter, and a table of
 * the current folder's folders and files with size, date and SHA-256 (the
 * first 12 hex digits shown, the whole one copied), each file a download
 * link the browser can resume. The folder being viewed is in the URL's
 * fragment (`#/photos/2024`), so the back button and bookmarks work, and
 * it is where uploads go.
 *
 * @module
 */

import { downloadLink, type Listing, type StoredFile } from "./api.ts";
import { announce, copyText, el, fill } from "./dom.ts";
import { formatBytes, formatDate, shortDigest } from "./format.ts";

/** Rows drawn at most (a filter narrows a larger folder). */
const MAX_ROWS = 1000;

/** The folder in the URL's fragment, as a name prefix (`photos/2024/`, or `` for the top). */
export function currentFolder(): string {
  const path = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const clean = path.split("/").filter((part) => part !== "").join("/");
  return clean === "" ? "" : `${clean}/`;
}

/** The link to folder `prefix`. */
function folderHref(prefix: string): string {
  return `#/${
    prefix.split("/").filter(Boolean).map(encodeURIComponent).join("/")
  }`;
}

/** What the view shows in one folder: its direct folders and files, or, with a filter, every match below it. */
export function visible(
  listing: Listing,
  prefix: string,
  filter: string,
): { dirs: string[]; files: StoredFile[] } {
  const needle = filter.trim().toLowerCase();
  const below = (name: string) => name.startsWith(prefix) && name !== prefix;
  if (needle !== "") {
    const match = (name: string) =>
      below(name) && name.slice(prefix.length).toLowerCase().includes(needle);
    return {
      dirs: listing.dirs.map((d) => d.name).filter(match),
      files: listing.files.filter((f) => match(f.name)),
    };
  }
  const direct = (name: string) =>
    below(name) && !name.slice(prefix.length).includes("/");
  const dirs = new Set(listing.dirs.map((d) => d.name).filter(direct));
  // A folder holding only folders still shows: take it from the names below.
  for (const file of listing.files) {
    if (!below(file.name)) continue;
    const rest = file.name.slice(prefix.length);
    const slash = rest.indexOf("/");
    if (slash !== -1) dirs.add(prefix + rest.slice(0, slash));
  }
  return {
    dirs: [...dirs].sort(),
    files: listing.files.filter((f) => direct(f.name)),
  };
}

/** The breadcrumb trail of `prefix`. */
export function renderCrumbs(nav: HTMLElement, prefix: string): void {
  const parts = prefix.split("/").filter(Boolean);
  const links: Node[] = [
    el("a", {
      href: "#/",
      ...(parts.length === 0 ? { "aria-current": "page" } : {}),
    }, "Top"),
  ];
  parts.forEach((part, index) => {
    const to = parts.slice(0, index + 1).join("/") + "/";
    links.push(
      el("span", { "aria-hidden": "true" }, " / "),
      el("a", {
        href: folderHref(to),
        ...(index === parts.length - 1 ? { "aria-current": "page" } : {}),
      }, part),
    );
  });
  fill(nav, ...links);
}

/** Draws the table of `listing` at `prefix` into `root`. */
export async function renderListing(
  root: HTMLElement,
  listing: Listing,
  prefix: string,
  filter: string,
): Promise<void> {
  const { dirs, files } = visible(listing, prefix, filter);
  if (dirs.length === 0 && files.length === 0) {
    fill(
      root,
      el(
        "p",
        { class: "empty" },
        filter.trim() ? "Nothing matches the filter." : "This folder is empty.",
      ),
    );
    return;
  }
  const rows: HTMLTableRowElement[] = [];
  for (const name of dirs.slice(0, MAX_ROWS)) {
    rows.push(dirRow(name.slice(prefix.length)));
  }
  const shown = files.slice(0, Math.max(0, MAX_ROWS - rows.length));
  const links = await Promise.all(shown.map((file) => downloadLink(file.name)));
  shown.forEach((file, i) =>
    rows.push(fileRow(file, file.name.slice(prefix.length), links[i]!))
  );
  const more = dirs.length + files.length - rows.length;
  fill(
    root,
    el(
      "table",
      { class: "listing" },
      el(
        "thead",
        {},
        el(
          "tr",
          {},
          el("th", { scope: "col" }, "Name"),
          el("th", { scope: "col", class: "num" }, "Size"),
          el("th", { scope: "col" }, "Modified"),
          el("th", { scope: "col" }, "SHA-256"),
        ),
      ),
      el("tbody", {}, ...rows),
    ),
    more > 0 &&
      el("p", { class: "hint" }, `${more} more not shown: use the filter.`),
  );
}

function dirRow(label: string): HTMLTableRowElement {
  const prefix = currentFolder() + label + "/";
  return el(
    "tr",
    { class: "dir" },
    el(
      "td",
      { "data-label": "Folder" },
      el("a", { href: folderHref(prefix) }, `${label}/`),
    ),
    el("td", { class: "num", "data-label": "Size" }, "—"),
    el("td", { "data-label": "Modified" }, ""),
    el("td", { "data-label": "SHA-256" }, ""),
  );
}

function fileRow(
  file: StoredFile,
  label: string,
  href: string,
): HTMLTableRowElement {
  const copy = el("button", {
    type: "button",
    class: "copy",
    "aria-label": `Copy the SHA-256 of ${file.name}`,
    onclick: async () => {
      const copied = await copyText(file.sha256);
      copy.textContent = copied ? "Copied" : "Copy failed";
      announce(copied ? "SHA-256 copied" : "Cannot copy here");
      setTimeout(() => copy.textContent = "Copy", 1500);
    },
  }, "Copy");
  return el(
    "tr",
    { class: "file", "data-name": file.name, "data-sha256": file.sha256 },
    el(
      "td",
      { "data-label": "Name" },
      el("a", { href, download: label.split("/").at(-1)! }, label),
      file.damaged &&
        el("span", { class: "badge error" }, "damaged: not served"),
    ),
    el("td", { class: "num", "data-label": "Size" }, formatBytes(file.size)),
    el("td", { "data-label": "Modified" }, formatDate(file.mtimeMs)),
    el(
      "td",
      { "data-label": "SHA-256" },
      el(
        "code",
        { class: "digest", title: file.sha256 },
        shortDigest(file.sha256),
      ),
      " ",
      copy,
    ),
  );
}
