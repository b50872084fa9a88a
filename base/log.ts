/**
 * Logging in the seed's format, to stderr:
 * `YYYY-MM-DD HH:MM:SS - Component - LEVEL - message`.
 *
 * @module
 */

import { printable } from "./printable.ts";

/**
 * The component names log lines carry, as the seed named them; each is
 * written here once.
 */
export const COMPONENT = {
  server: "FileTransferServer",
  client: "FileTransferClient",
  demo: "FileTransferDemo",
  proxy: "FaultProxy",
} as const;

/** Log levels, least to most severe. */
export type LogLevel = "DEBUG" | "INFO" | "WARNING" | "ERROR";

const RANK: Record<LogLevel, number> = {
  DEBUG: 0,
  INFO: 1,
  WARNING: 2,
  ERROR: 3,
};

/** Where log lines go; tests capture them with their own sink. */
export type LogSink = (line: string) => void;

const encoder = new TextEncoder();

/** Writes a line to stderr. */
export const stderrSink: LogSink = (line) => {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
};

/** Options for {@linkcode Logger}. */
export interface LoggerOptions {
  /** Least severe level written. @default "INFO" */
  level?: LogLevel;
  /** Where lines go. @default stderrSink */
  sink?: LogSink;
}

/** Formats a date as `YYYY-MM-DD HH:MM:SS` in local time. */
export function formatTimestamp(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${
    pad(date.getDate())
  } ${pad(date.getHours())}:${pad(date.getMinutes())}:${
    pad(date.getSeconds())
  }`;
}

/** A named component's logger, e.g. `FileTransferServer`. */
export class Logger {
  /** The component named in each line, e.g. `FileTransferClient`. */
  readonly component: string;
  #min: number;
  #sink: LogSink;

  /** Creates a logger for `component`. */
  constructor(component: string, options: LoggerOptions = {}) {
    this.component = component;
    this.#min = RANK[options.level ?? "INFO"];
    this.#sink = options.sink ?? stderrSink;
  }

  /** A logger for another component sharing this one's level and sink. */
  child(component: string): Logger {
    const level = (Object.keys(RANK) as LogLevel[]).find((l) =>
      RANK[l] === this.#min
    )!;
    return new Logger(component, { level, sink: this.#sink });
  }

  /**
   * This logger, printing nothing below `level` either: per-file lines of a
   * tree transfer go through one, so a tree logs a summary, not every file.
   */
  atLeast(level: LogLevel): Logger {
    const min = Math.max(this.#min, RANK[level]);
    const name = (Object.keys(RANK) as LogLevel[]).find((l) =>
      RANK[l] === min
    )!;
    return new Logger(this.component, { level: name, sink: this.#sink });
  }

  /**
   * Writes `message` at `level` when the level is enabled. Control and
   * bidirectional control characters are shown as `\uXXXX`
   * ({@linkcode printable}): text from a peer cannot forge or hide log lines.
   */
  log(level: LogLevel, message: string): void {
    if (RANK[level] < this.#min) return;
    this.#sink(
      `${formatTimestamp(new Date())} - ${this.component} - ${level} - ${
        printable(message)
      }`,
    );
  }

  /** Logs at DEBUG. */
  debug(message: string): void {
    this.log("DEBUG", message);
  }
  /** Logs at INFO. */
  info(message: string): void {
    this.log("INFO", message);
  }
  /** Logs at WARNING. */
  warn(message: string): void {
    this.log("WARNING", message);
  }
  /** Logs at ERROR. */
  error(message: string): void {
    this.log("ERROR", message);
  }
}
