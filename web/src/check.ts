/// <reference lib="dom" />
/**
 * "Check a local file": hashes files the user drops or picks, here in the
 * browser (nothing is sent), and says whether the store holds exactly
 * that: a stored file with the same SHA-256, or which stored file of the
 * same name differs.
 *
 * @module
 */

import type { Listing } from "./api.ts";
import { announce, el, fill } from "./dom.ts";
import { formatBytes, shortDigest } from "./format.ts";
import type { HashPool } from "./hashing.ts";
import type { Picked } from "./queue.ts";

/** What the store says about one local file. */
export type Verdict =
  | { held: true; names: string[] }
  | { held: false; sameName: { name: string; sha256: string }[] };

/** Whether `listing` holds a file with `sha256`, or what it has of that name. */
export function verdictOf(
  listing: Listing,
  fileName: string,
  sha256: string,
): Verdict {
  const names = listing.files.filter((f) => f.sha256 === sha256 && !f.damaged)
    .map((f) => f.name);
  if (names.length > 0) return { held: true, names };
  const base = (name: string) => name.slice(name.lastIndexOf("/") + 1);
  return {
    held: false,
    sameName: listing.files.filter((f) => base(f.name) === fileName)
      .map((f) => ({ name: f.name, sha256: f.sha256 })),
  };
}

/** Checks each of `picked` against the store, drawing a result line for each into `list`. */
export async function checkFiles(
  list: HTMLElement,
  picked: readonly Picked[],
  pool: HashPool,
  listing: () => Promise<Listing>,
): Promise<void> {
  await Promise.all(picked.map(async ({ file, path }) => {
    const progress = el("progress", {
      max: Math.max(file.size, 1),
      value: 0,
      "aria-label": `Hashing ${path}`,
    });
    const result = el("p", { class: "status" }, "Hashing…");
    const li = el(
      "li",
      { class: "item", "data-name": path },
      el(
        "div",
        { class: "head" },
        el("span", { class: "name" }, path),
        el("span", { class: "size" }, formatBytes(file.size)),
      ),
      progress,
      result,
    );
    list.prepend(li);
    try {
      const sha256 = await pool.hash(file, {
        onProgress: (pos) => progress.value = pos,
      }).done;
      progress.value = progress.max;
      const verdict = verdictOf(await listing(), file.name, sha256);
      li.dataset.held = String(verdict.held);
      li.dataset.sha256 = sha256;
      fill(result, ...verdictText(verdict, sha256));
      result.classList.add(verdict.held ? "ok" : "warn");
      announce(`${path}: ${verdict.held ? "held" : "not held"}`);
    } catch (error) {
      result.textContent = `Cannot check it: ${(error as Error).message}`;
      result.classList.add("error");
    }
  }));
}

function verdictText(verdict: Verdict, sha256: string): (Node | string)[] {
  const digest = el("code", { class: "digest" }, sha256);
  if (verdict.held) {
    return [
      `Held: the store has exactly this file as ${
        verdict.names.join(", ")
      }. SHA-256 `,
      digest,
    ];
  }
  const differing = verdict.sameName.map((f) =>
    `${f.name} (SHA-256 ${shortDigest(f.sha256)}…)`
  );
  return [
    differing.length > 0
      ? `Not held: the store's ${
        differing.join(", ")
      } differs. This file's SHA-256 `
      : "Not held: no stored file has this SHA-256 ",
    digest,
  ];
}
