/**
 * Text from a peer, made safe to print on a terminal: the one escaping
 * function behind every log line and every line the command line prints
 * that may hold a name or message from the other side.
 *
 * @module
 */

/**
 * What a terminal would act on or render misleadingly: C0 controls, DEL,
 * C1 controls, and the bidirectional controls that reorder what follows
 * them (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).
 */
const UNPRINTABLE =
  // deno-lint-ignore no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

function escapeCharacter(character: string): string {
  return `\\u${character.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * `text` with every control and bidirectional control character shown as
 * `\uXXXX`, so text from a peer can neither forge a line, move the cursor,
 * nor make `evil\u202Etxt.exe` read as `evilexe.txt`. Inside JSON the
 * escapes are JSON's own, so a JSON line stays valid and parses back to
 * the same strings.
 *
 * @example
 * ```ts
 * import { printable } from "./printable.ts";
 * console.log(printable("a\u202Etxt.exe\n")); // a\u202etxt.exe\u000a
 * ```
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, escapeCharacter);
}

/**
 * Up to `max` bytes a peer sent, quoted for a message: JSON's escapes for
 * quotes, backslashes and controls (`"SSH-2.0-x\r\n"`), each other byte as
 * the Latin-1 character of that value, and `...` after the quote when
 * there was more.
 */
export function quotedBytes(bytes: Uint8Array, max = 40): string {
  const text = String.fromCharCode(...bytes.subarray(0, max));
  return printable(JSON.stringify(text)) + (bytes.length > max ? "..." : "");
}
