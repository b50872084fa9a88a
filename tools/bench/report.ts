/**
 * What the bench prints: each row's median MB/s with min-max, RSS and CPU
 * per GiB; ftv's ratios to each baseline that moves the same thing; and the
 * targets the README promises, met or missed.
 *
 * @module
 */

import { fixed, MB, MiB } from "./common.ts";
import { ERROR_RATE } from "./ftv_rows.ts";
import type { Row, Sample, Workload } from "./rows.ts";

/** Targets printed beside their ratios. */
const TARGET = {
  /** `get --fec auto` time to verified / `--fec off`'s, on the lossy link, at most. */
  fecAutoVsOff: 0.8,
  /** `get --fec auto` / `get` throughput on a clean link, at least. */
  fecClean: 0.97,
  /** `send` to a server writing parity / to one writing none, at least. */
  parityWrite: 0.9,
  /** `send` (auto) throughput / `send --compress none` throughput, at least. */
  autoVsNone: 0.95,
  /** The web page's upload / `curl -T`'s, at least. */
  webVsCurl: 0.5,
  /** ftv's time / rsync's time for the tree, at most. */
  treeVsRsync: 1.5,
  /** Wire bytes / bytes of the text file, below. */
  textWire: 0.15,
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2
    ? sorted[mid]!
    : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A row's figures over its runs. */
export interface Summary {
  id: string;
  label: string;
  kind: "ftv" | "baseline";
  workload?: Workload;
  skipped?: string;
  runs: number;
  mbps?: { median: number; min: number; max: number };
  /** MB/s from the seconds ftv reported itself (no process start-up). */
  ftvMbps?: number;
  /** Largest peak RSS over the runs, MiB. */
  serverRssMiB?: number;
  clientRssMiB?: number;
  /** Median CPU seconds (user + system) per GiB moved, each side. */
  serverCpuPerGiB?: number;
  clientCpuPerGiB?: number;
  retransmitted?: number[];
  /** Median of wire bytes / bytes, as ftv reported them. */
  wireShare?: number;
  samples: Sample[];
}

/** A row's samples summed up. */
export function summarise(row: Row): Summary {
  const summary: Summary = {
    id: row.id,
    label: row.label,
    kind: row.kind,
    runs: row.samples.length,
    samples: row.samples,
  };
  if (row.workload) summary.workload = row.workload;
  if (row.skipped) summary.skipped = row.skipped;
  if (row.samples.length === 0) return summary;
  const rates = row.samples.map((s) => s.bytes / MB / (s.ms / 1000));
  summary.mbps = {
    median: median(rates),
    min: Math.min(...rates),
    max: Math.max(...rates),
  };
  const ftvRates = row.samples.filter((s) => s.ftvSeconds).map((s) =>
    s.bytes / MB / s.ftvSeconds!
  );
  if (ftvRates.length) summary.ftvMbps = median(ftvRates);
  const peak = (key: "serverRss" | "clientRss") => {
    const values = row.samples.map((s) => s[key] ?? 0);
    const max = Math.max(...values);
    return max > 0 ? max / 1024 : undefined;
  };
  const server = peak("serverRss");
  const client = peak("clientRss");
  if (server !== undefined) summary.serverRssMiB = server;
  const cpu = (key: "serverCpu" | "clientCpu") => {
    const values = row.samples.filter((s) => s[key] !== undefined).map((s) =>
      s[key]! / (s.bytes / (1024 * MiB))
    );
    return values.length ? median(values) : undefined;
  };
  const serverCpu = cpu("serverCpu");
  const clientCpu = cpu("clientCpu");
  if (serverCpu !== undefined) summary.serverCpuPerGiB = serverCpu;
  if (clientCpu !== undefined) summary.clientCpuPerGiB = clientCpu;
  if (client !== undefined) summary.clientRssMiB = client;
  if (row.samples.some((s) => s.retransmitted !== undefined)) {
    summary.retransmitted = row.samples.map((s) => s.retransmitted ?? 0);
  }
  const shares = row.samples.flatMap((s) => s.wireShare ?? []);
  if (shares.length) summary.wireShare = median(shares);
  return summary;
}

/** `rows` as columns, each padded to its widest cell. */
export function table(rows: string[][], align: ("l" | "r")[]): string {
  const widths = rows[0]!.map((_, c) =>
    Math.max(...rows.map((r) => (r[c] ?? "").length))
  );
  return rows.map((r) =>
    r.map((cell, c) =>
      align[c] === "r" ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)
    ).join("  ").trimEnd()
  ).join("\n");
}

interface Ratio {
  label: string;
  value?: number;
  /** Printed as a percentage rather than a ratio. */
  percent?: boolean;
  note?: string;
}

/** "target <= 1.5x: met", or "MISSED". */
function targetNote(target: string, met: boolean): string {
  return `target ${target}: ${met ? "met" : "MISSED"}`;
}

/** One row's median against another's, where both ran. */
function pairRatios(summaries: Summary[], noFsync: boolean): Ratio[] {
  const by = (id: string) =>
    summaries.find((s) => s.id === id && s.mbps)?.mbps?.median;
  const extra: Ratio[] = [];
  const pair = (
    label: string,
    a: string,
    b: string,
    target?: { text: string; met: (value: number) => boolean },
  ) => {
    const x = by(a);
    const y = by(b);
    if (x === undefined || y === undefined) return;
    const value = x / y;
    extra.push({
      label,
      value,
      ...(target ? { note: targetNote(target.text, target.met(value)) } : {}),
    });
  };
  pair("get / send", "get", "send");
  pair(
    `send error-rate ${ERROR_RATE} / clean send (goodput)`,
    "send-err",
    "send",
  );
  pair(`get error-rate ${ERROR_RATE} / clean get (goodput)`, "get-err", "get");
  pair("N clients aggregate / one client", "clients-n", "clients");
  // Same bytes, so off's rate / auto's rate is auto's time / off's time.
  pair(
    "get --fec auto / off, time to verified (lossy link)",
    "get-fec-off",
    "get-fec-auto",
    {
      text: `<= ${TARGET.fecAutoVsOff}x`,
      met: (value) => value <= TARGET.fecAutoVsOff,
    },
  );
  pair(
    "get --fec auto / get, clean link (throughput)",
    "get-fec-clean",
    "get",
    {
      text: `>= ${TARGET.fecClean}x`,
      met: (value) => value >= TARGET.fecClean,
    },
  );
  pair("send, parity kept / none (throughput)", "send", "send-noparity", {
    text: `>= ${TARGET.parityWrite}x`,
    met: (value) => value >= TARGET.parityWrite,
  });
  pair("send --compress auto / none (throughput)", "send", "send-none", {
    text: `>= ${TARGET.autoVsNone}x`,
    met: (value) => value >= TARGET.autoVsNone,
  });
  pair("web page upload (Chromium) / curl -T upload", "web-put", "http-put", {
    text: `>= ${TARGET.webVsCurl}x`,
    met: (value) => value >= TARGET.webVsCurl,
  });
  pair("web page upload / plain XHR PUT from Chromium", "web-put", "web-xhr");
  // Same bytes both ways, so rsync's rate / ftv's is ftv's time / rsync's.
  // rsync never syncs: the target is judged only against a server that does not either.
  if (noFsync) {
    pair("tree: ftv time / rsync -r time", "rsync-tree", "tree", {
      text: `<= ${TARGET.treeVsRsync}x`,
      met: (value) => value <= TARGET.treeVsRsync,
    });
  } else {
    pair(
      "tree: ftv time (syncing every file) / rsync -r time (never syncing); the target is judged with --no-fsync",
      "rsync-tree",
      "tree",
    );
  }
  return extra;
}

/** The text rows' wire bytes / bytes, against their target. */
function wireRatios(summaries: Summary[]): Ratio[] {
  return summaries.filter((s) =>
    (s.id === "send-text" || s.id === "send-log") && s.wireShare !== undefined
  ).map((text) => ({
    label: `${text.label}, wire bytes / bytes`,
    value: text.wireShare!,
    percent: true,
    note: targetNote(
      `< ${TARGET.textWire * 100}%`,
      text.wireShare! < TARGET.textWire,
    ),
  }));
}

/**
 * The ratios: pairs of rows, text on the wire, and each ftv row's median
 * over each baseline's of the same workload. `noFsync`: the receivers ran
 * with `--no-fsync`, so the tree target is judged.
 */
export function ratios(summaries: Summary[], noFsync: boolean) {
  const extra = [
    ...pairRatios(summaries, noFsync),
    ...wireRatios(summaries),
  ];
  const ftv = summaries.filter((s) => s.kind === "ftv" && s.mbps);
  const baselines = summaries.filter((s) => s.kind === "baseline" && s.mbps);
  const matrix = ftv.map((f) => ({
    id: f.id,
    label: f.label,
    versus: Object.fromEntries(
      baselines.filter((b) => b.workload === f.workload).map((
        b,
      ) => [b.id, f.mbps!.median / b.mbps!.median]),
    ),
  })).filter((m) => Object.keys(m.versus).length > 0);
  return { extra, matrix, baselines };
}

/** The table of rows that ran. */
function rowTable(summaries: Summary[]): string {
  const body: string[][] = [[
    "row",
    "MB/s median",
    "min-max",
    "in-ftv MB/s",
    "server RSS",
    "client RSS",
    "CPU s/GiB srv+cli",
  ]];
  for (const s of summaries) {
    if (!s.mbps) continue;
    body.push([
      s.label,
      fixed(s.mbps.median),
      `${fixed(s.mbps.min)}-${fixed(s.mbps.max)}`,
      s.ftvMbps ? fixed(s.ftvMbps) : "",
      s.serverRssMiB ? `${fixed(s.serverRssMiB)} MiB` : "",
      s.clientRssMiB ? `${fixed(s.clientRssMiB)} MiB` : "",
      s.serverCpuPerGiB !== undefined && s.clientCpuPerGiB !== undefined
        ? `${fixed(s.serverCpuPerGiB, 2)}+${fixed(s.clientCpuPerGiB, 2)}`
        : "",
    ]);
  }
  return table(body, ["l", "r", "r", "r", "r", "r", "r"]);
}

/** The ratio lines under the table: the matrix, then the other ratios. */
function ratioLines(summaries: Summary[], noFsync: boolean): string[] {
  const lines: string[] = [];
  const { extra, matrix, baselines } = ratios(summaries, noFsync);
  if (matrix.length && baselines.length) {
    lines.push("", "ftv median / baseline median:");
    const grid: string[][] = [["", ...baselines.map((b) => b.label)]];
    for (const m of matrix) {
      grid.push([
        m.label,
        ...baselines.map((b) => {
          const value = m.versus[b.id];
          return value === undefined ? "" : `${value.toFixed(2)}x`;
        }),
      ]);
    }
    lines.push(table(grid, ["l", ...baselines.map(() => "r" as const)]));
  }
  if (extra.length) {
    lines.push("");
    for (const r of extra) {
      const value = r.percent
        ? `${(r.value! * 100).toFixed(1)}%`
        : `${r.value!.toFixed(2)}x`;
      lines.push(`${r.label}: ${value}${r.note ? ` (${r.note})` : ""}`);
    }
  }
  return lines;
}

/** Prints the report: `header`, the table, the ratios, what was skipped. */
export function printReport(
  header: string[],
  summaries: Summary[],
  noFsync: boolean,
): void {
  const lines: string[] = [...header, "", rowTable(summaries)];
  lines.push(...ratioLines(summaries, noFsync));
  const retrans = summaries.filter((s) => s.retransmitted);
  for (const s of retrans) {
    lines.push(
      `${s.label}: chunks retransmitted per run ${s.retransmitted!.join(", ")}`,
    );
  }
  for (const s of summaries) {
    const rounds = s.samples.flatMap((sample) => sample.attempts ?? []);
    if (rounds.length === 0) continue;
    const clean = rounds.filter((attempts) => attempts === 1).length;
    lines.push(
      `${s.label}: ${clean} of ${rounds.length} runs with no repair round (rounds per run ${
        rounds.join(", ")
      })`,
    );
  }
  const skipped = summaries.filter((s) => s.skipped);
  if (skipped.length) {
    lines.push("", "Skipped:");
    for (const s of skipped) lines.push(`  ${s.label}: ${s.skipped}`);
  }
  lines.push(
    "",
    "MB/s = 10^6 bytes per second of wall time, client process start to exit" +
      " (round trip counts both directions); in-ftv MB/s uses the seconds ftv" +
      " reports (after start-up). RSS = peak (VmHWM / time %M) over the runs;" +
      " for N clients, the largest client. CPU s/GiB = median user+system" +
      " seconds per GiB moved, server + client (all N clients together): less" +
      " noisy than wall time when other processes or the VM interfere.",
  );
  console.log(lines.join("\n"));
}
