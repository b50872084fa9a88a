/**
 * Showing a transfer move: a live bar on a terminal, one JSON event per line
 * for scripts and GUIs, or nothing.
 *
 * @module
 */

import { formatBytes } from "../base/bytes.ts";
import { formatDuration } from "../base/clock.ts";
import type { LogSink } from "../base/log.ts";
import { printable } from "../base/printable.ts";
import type { ProgressEvent } from "../engine/transfer.ts";

/** How progress is shown: `bar` on a terminal, `json` lines, or `none`. */
export type ProgressMode = "bar" | "json" | "none";

/** Where progress text goes; tests capture it. */
export type TextSink = (text: string) => void;

const encoder = new TextEncoder();

/** Writes text to standard output as is. */
export const stdoutText: TextSink = (text) => {
  Deno.stdout.writeSync(encoder.encode(text));
};

/** Options for {@linkcode ProgressReporter}. */
export interface ProgressReporterOptions {
  /** Where text goes. @default stdoutText */
  write?: TextSink;
  /** Milliseconds between updates. @default 100 */
  intervalMs?: number;
  /** Bar width in characters. @default 24 */
  width?: number;
  /** The clock, in milliseconds. @default performance.now */
  now?: () => number;
}

/** Turns progress events into bar redraws or JSON lines, at most every `intervalMs`. */
export class ProgressReporter {
  readonly mode: ProgressMode;
  #write: TextSink;
  #intervalMs: number;
  #width: number;
  #now: () => number;
  #started: number;
  #startBytes: number | undefined;
  #lastShown = -Infinity;
  #last: ProgressEvent | undefined;
  #drawn = false;
  #stopped = false;

  /** A reporter in `mode`. */
  constructor(mode: ProgressMode, options: ProgressReporterOptions = {}) {
    this.mode = mode;
    this.#write = options.write ?? stdoutText;
    this.#intervalMs = options.intervalMs ?? 100;
    this.#width = options.width ?? 24;
    this.#now = options.now ?? (() => performance.now());
    this.#started = this.#now();
  }

  /** The callback to hand to a transfer. */
  readonly update = (event: ProgressEvent): void => {
    if (this.#stopped) return;
    this.#startBytes ??= event.bytes;
    this.#last = event;
    if (this.mode === "none") return;
    const now = this.#now();
    if (now - this.#lastShown < this.#intervalMs && event.bytes < event.total) {
      return;
    }
    this.#lastShown = now;
    this.#show(event, now);
  };

  /** Ends the bar with a summary line, or emits the last JSON event. */
  finish(summary: string): void {
    if (this.mode === "none") return;
    if (this.mode === "json") {
      if (this.#last) this.#show(this.#last, this.#now(), "done");
      return;
    }
    this.#clear();
    this.#write(summary + "\n");
  }

  /** The latest event, whatever the mode: how far the transfer got. */
  get last(): ProgressEvent | undefined {
    return this.#last;
  }

  /**
   * The transfer was stopped: the bar is cleared (JSON progress ends with a
   * `stopped` event) and later events are ignored.
   */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.mode === "json" && this.#last) {
      this.#show(this.#last, this.#now(), "stopped");
    }
    this.#clear();
  }

  /** Wraps a log sink so log lines do not tear the bar: clear, log, redraw. */
  wrapSink(sink: LogSink): LogSink {
    return (line) => {
      if (this.mode !== "bar" || !this.#drawn) return sink(line);
      this.#clear();
      sink(line);
      if (this.#last) this.#show(this.#last, this.#now());
    };
  }

  /** Bytes per second since the first event. */
  #rate(event: ProgressEvent, now: number): number {
    const seconds = (now - this.#started) / 1000;
    return seconds > 0 ? (event.bytes - (this.#startBytes ?? 0)) / seconds : 0;
  }

  #show(event: ProgressEvent, now: number, kind = "progress"): void {
    const rate = this.#rate(event, now);
    if (this.mode === "json") {
      this.#write(
        JSON.stringify({
          event: kind,
          ...event,
          bytesPerSecond: Math.round(rate),
          seconds: Math.round(now - this.#started) / 1000,
        }) + "\n",
      );
      return;
    }
    const share = event.total > 0 ? event.bytes / event.total : 1;
    const filled = Math.round(share * this.#width);
    const eta = rate > 0 ? (event.total - event.bytes) / rate : Infinity;
    const line = `${printable(event.name)} [${"#".repeat(filled)}${
      ".".repeat(this.#width - filled)
    }] ${(share * 100).toFixed(0).padStart(3)}% ${formatBytes(event.bytes)}/${
      formatBytes(event.total)
    } ${formatBytes(rate)}/s ETA ${formatDuration(eta)}${
      event.retransmittedChunks ? ` retx ${event.retransmittedChunks}` : ""
    }`;
    this.#write(`\r\x1b[2K${line}`);
    this.#drawn = true;
  }

  #clear(): void {
    if (!this.#drawn) return;
    this.#write("\r\x1b[2K");
    this.#drawn = false;
  }
}
