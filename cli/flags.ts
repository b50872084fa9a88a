/**
 * How a command-line flag is declared once and everything else derived from
 * it: the `parseArgs` spec, the help line and the typed, checked value. The
 * flags themselves are in `options.ts`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseBytes } from "../base/bytes.ts";
import { type GroupShape, parseShape } from "../engine/parity/shape.ts";
import { UsageError } from "./exit.ts";

/** How a flag's text becomes a value. */
export type FlagKind =
  | "boolean"
  | "string"
  | "integer"
  | "bytes"
  | "rate"
  | "seconds"
  | "enum"
  | "shape"
  | "list";

/** One command-line flag: its kind, help, default and allowed values. */
export interface Flag<T> {
  /** How its text is read. */
  readonly kind: FlagKind;
  /** What stands for its value in help (`PORT`); none for a boolean. */
  readonly arg: string | undefined;
  /** What it does, as help says it, with `(default: ...)` when it has one. */
  readonly help: string;
  /** Lowest and highest value, for the numeric kinds. */
  readonly range: readonly [number, number] | undefined;
  /** The values allowed, for `enum`. */
  readonly choices: readonly string[] | undefined;
  /** Its value from the text given (`undefined`: not given); throws a `UsageError`. */
  value(raw: string | boolean | string[] | undefined, name: string): T;
}

/** A set of flags by name (without the leading `--`), in help order. */
export type Flags = Readonly<Record<string, Flag<unknown>>>;

/** The checked values of a set of flags. */
export type Values<F extends Flags> = {
  -readonly [K in keyof F]: F[K] extends Flag<infer T> ? T : never;
};

/** What help says of a flag; `shown` is the default as help shows it. */
export interface FlagDoc {
  /** What stands for the value in help, e.g. `PORT`. */
  arg: string;
  /** What the flag does. */
  help: string;
  /** The default as help shows it when it is not simply the value. */
  shown?: string;
}

/** Declares a flag that is on when given. */
export function boolean(doc: Omit<FlagDoc, "arg">): Flag<boolean> {
  return flag("boolean", { ...doc, arg: "" }, {}, (raw) => raw === true);
}

/** A string flag's own rules: a default, or a shape it must have. */
export interface StringRules {
  /** The value when the flag is not given. */
  default?: string;
  /** A shape the value must match, and what help calls it. */
  pattern?: { regex: RegExp; needs: string };
}

/** Declares a flag that takes text; an empty value is refused. */
export function string(
  doc: FlagDoc & StringRules & { default: string },
): Flag<string>;
/** Declares a flag that takes text, with no default. */
export function string(doc: FlagDoc & StringRules): Flag<string | undefined>;
export function string(
  doc: FlagDoc & StringRules,
): Flag<string | undefined> {
  return flag("string", doc, {}, (raw, name) => {
    if (raw === undefined) return doc.default;
    if (typeof raw !== "string" || raw === "") {
      throw new UsageError(`--${name} needs a value`);
    }
    if (doc.pattern && !doc.pattern.regex.test(raw)) {
      throw new UsageError(`--${name} needs ${doc.pattern.needs}`);
    }
    return raw;
  });
}

/**
 * Declares a flag that may be given several times, each time with one or
 * more values separated by commas: `--host a,b --host c`.
 */
export function list(
  doc: FlagDoc & { default: string },
): Flag<string[]> {
  return flag("list", doc, {}, (raw, name) => {
    const given = raw === undefined
      ? [doc.default]
      : Array.isArray(raw)
      ? raw
      : [String(raw)];
    const values = given.flatMap((value) => value.split(",")).map((value) =>
      value.trim()
    );
    if (values.some((value) => value === "")) {
      throw new UsageError(`--${name} needs a value`);
    }
    return values;
  });
}

/** A numeric flag's range and default. */
export interface IntegerRules {
  /** Lowest value allowed. */
  min: number;
  /** Highest value allowed. */
  max: number;
  /** The value when the flag is not given. */
  default?: number;
}

/** Declares a flag that takes a whole number in `min..max`. */
export function integer(
  doc: FlagDoc & IntegerRules & { default: number },
): Flag<number>;
/** Declares a flag that takes a whole number in `min..max`, with no default. */
export function integer(doc: FlagDoc & IntegerRules): Flag<number | undefined>;
export function integer(
  doc: FlagDoc & IntegerRules,
): Flag<number | undefined> {
  const { min, max } = doc;
  return flag("integer", doc, { range: [min, max] }, (raw, name) => {
    if (raw === undefined) return doc.default;
    const value = Number(raw);
    if (
      typeof raw !== "string" || !/^\d+$/.test(raw) || value < min ||
      value > max
    ) {
      throw new UsageError(
        `--${name} must be a whole number from ${min} to ${max}, got "${raw}"`,
      );
    }
    return value;
  });
}

/** Declares a flag that takes a byte count such as `500k` or `10G`. */
export function bytes(doc: FlagDoc): Flag<number | undefined> {
  const range = [1, Number.MAX_SAFE_INTEGER] as const;
  return flag("bytes", doc, { range }, (raw, name) => {
    if (raw === undefined) return undefined;
    try {
      return parseBytes(String(raw));
    } catch (error) {
      throw new UsageError(`--${name}: ${(error as Error).message}`);
    }
  });
}

/** Declares a flag that takes a probability, from 0 to 1. */
export function rate(doc: FlagDoc & { default: number }): Flag<number> {
  return decimal("rate", doc, {
    range: [0, 1],
    accepts: (value) => value >= 0 && value <= 1,
    must: "a number from 0 to 1",
  });
}

/** Longest time a seconds flag may be: a day. */
const MAX_SECONDS = 86400;

/** Declares a flag that takes a time in seconds, more than 0, up to a day. */
export function seconds(doc: FlagDoc & { default: number }): Flag<number> {
  return decimal("seconds", doc, {
    range: [0, MAX_SECONDS],
    accepts: (value) => value > 0 && value <= MAX_SECONDS,
    must: `a number of seconds from 0 to ${MAX_SECONDS}`,
  });
}

/** A flag that takes a decimal number that `accepts` allows. */
function decimal(
  kind: FlagKind,
  doc: FlagDoc & { default: number },
  rules: {
    range: readonly [number, number];
    accepts: (value: number) => boolean;
    must: string;
  },
): Flag<number> {
  return flag(kind, doc, { range: rules.range }, (raw, name) => {
    if (raw === undefined) return doc.default;
    if (
      typeof raw !== "string" || raw.trim() === "" ||
      !rules.accepts(Number(raw))
    ) {
      throw new UsageError(`--${name} must be ${rules.must}, got "${raw}"`);
    }
    return Number(raw);
  });
}

/**
 * Declares a flag that takes `K+M` (groups of K chunks with M parity
 * shards) or one of `words` (such as `off`).
 */
export function shape<W extends string>(
  doc: FlagDoc & { words: readonly W[]; default: W | GroupShape },
): Flag<W | GroupShape> {
  const choices = [...doc.words, "K+M"];
  return flag("shape", doc, { choices }, (raw, name) => {
    if (raw === undefined) return doc.default;
    const word = doc.words.find((w) => w === raw);
    if (word !== undefined) return word;
    try {
      return parseShape(String(raw));
    } catch (error) {
      throw new UsageError(`--${name}: ${(error as Error).message}`);
    }
  });
}

/** Declares a flag that takes one of `choices`. */
export function choice<V extends string>(
  doc: FlagDoc & { choices: readonly V[]; default: V },
): Flag<V>;
/** Declares a flag that takes one of `choices`, with no default. */
export function choice<V extends string>(
  doc: FlagDoc & { choices: readonly V[] },
): Flag<V | undefined>;
export function choice<V extends string>(
  doc: FlagDoc & { choices: readonly V[]; default?: V },
): Flag<V | undefined> {
  const { choices } = doc;
  return flag("enum", doc, { choices }, (raw, name) => {
    if (raw === undefined) return doc.default;
    const value = choices.find((c) => c === raw);
    if (value === undefined) {
      throw new UsageError(
        `--${name} must be ${orList(choices)}, got "${raw}"`,
      );
    }
    return value;
  });
}

/** `a, b or c`. */
export function orList(words: readonly string[]): string {
  return words.length < 2
    ? words.join("")
    : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}

function flag<T>(
  kind: FlagKind,
  doc: FlagDoc & { default?: unknown },
  allowed: Pick<Partial<Flag<T>>, "range" | "choices">,
  value: (raw: string | boolean | undefined, name: string) => T,
): Flag<T> {
  const shown = doc.shown ??
    (doc.default === undefined ? undefined : String(doc.default));
  return {
    kind,
    arg: doc.arg === "" ? undefined : doc.arg,
    help: shown === undefined ? doc.help : `${doc.help} (default: ${shown})`,
    range: allowed.range,
    choices: allowed.choices,
    value,
  };
}

/** What the command line held, before the values are checked. */
export interface ParsedArgs {
  /** The text of each flag given (or `true`; every text of a list), by name. */
  raw: Record<string, string | boolean | string[] | undefined>;
  /** The arguments that are not flags. */
  positionals: string[];
}

/** Splits `args` into the flags of `flags` (and `--help`) and positionals. */
export function parseFlags(flags: Flags, args: string[]): ParsedArgs {
  const options: Record<
    string,
    { type: "string" | "boolean"; multiple?: boolean }
  > = { help: { type: "boolean" } };
  for (const [name, { kind }] of Object.entries(flags)) {
    options[name] = kind === "list"
      ? { type: "string", multiple: true }
      : { type: kind === "boolean" ? "boolean" : "string" };
  }
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      allowPositionals: true,
      strict: true,
    });
    return { raw: values as ParsedArgs["raw"], positionals };
  } catch (error) {
    // parseArgs explains at length; the first line says what is wrong.
    throw new UsageError((error as Error).message.split("\n")[0]!);
  }
}

/** Checks every flag of `flags` in `raw`, in help order; throws a `UsageError`. */
export function valuesOf<F extends Flags>(
  flags: F,
  raw: ParsedArgs["raw"],
): Values<F> {
  const values: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(flags)) {
    values[name] = flag.value(raw[name], name);
  }
  return values as Values<F>;
}

/** Help text stays within this many columns where words allow. */
const HELP_WIDTH = 80;
/** Column where a flag's help starts. */
const HELP_INDENT = 23;

/** The help lines of `flags`: `  --name ARG   what it does (default: ...)`. */
export function flagHelp(flags: Flags): string {
  return Object.entries(flags).map(([name, flag]) => {
    const label = `  --${name}${flag.arg ? ` ${flag.arg}` : ""}`;
    const start = label.length < HELP_INDENT - 1
      ? label.padEnd(HELP_INDENT)
      : `${label}${label.length < HELP_INDENT ? " " : "  "}`;
    return start + wrap(flag.help, HELP_WIDTH - start.length);
  }).join("\n");
}

/** Wraps `text` at spaces; a `(default: ...)` is kept on one line. */
function wrap(text: string, firstWidth: number): string {
  const keep = text.replace(
    /\(default: [^)]*\)$/,
    (d) => d.replaceAll(" ", "\0"),
  );
  const lines: string[] = [];
  let line = "";
  for (const word of keep.split(" ")) {
    const width = lines.length === 0 ? firstWidth : HELP_WIDTH - HELP_INDENT;
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.join("\n" + " ".repeat(HELP_INDENT)).replaceAll("\0", " ");
}
