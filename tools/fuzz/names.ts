/**
 * Names the fuzzer puts in requests: hostile ones a server must refuse with
 * `bad_name` (each would leave the folder, hide a control character,
 * collide on disk or clash with ftv's own files), and legal but awkward
 * ones it must store inside the folder like any other.
 *
 * @module
 */

import { MAX_NAME_BYTES } from "../../protocol/names.ts";

/**
 * Names a server must refuse with `bad_name`: each would leave the folder,
 * hide a control character, collide on disk or clash with ftv's own files.
 * {@linkcode hostileNames} adds absolute paths into a folder of your choice.
 */
export const HOSTILE_NAMES: readonly string[] = [
  "",
  ".",
  "..",
  "../evil",
  "../../evil",
  "../../../../../../../../etc/passwd",
  "/etc/passwd",
  "/",
  "//",
  "./evil",
  "evil/",
  "a//b",
  "a/./b",
  "a/b/..",
  "x/.ftv",
  "a/../../evil",
  "a\\b",
  "..\\evil",
  "..\\..\\windows\\win.ini",
  "\\\\server\\share\\evil",
  "C:evil",
  "C:\\evil",
  "c:/evil",
  "a\u0000b",
  "\u0000",
  "evil\n",
  "evil\r",
  "\u001b[2Jevil",
  "evil\u007f",
  "evil\u0085",
  "\ud800",
  "x\udfffy",
  ".ftv",
  "x.ftv-part",
  "x.ftv-state",
  ".ftv-part",
  "x.ftv-state.tmp",
  "x".repeat(MAX_NAME_BYTES + 1),
  "é".repeat(Math.ceil((MAX_NAME_BYTES + 1) / 2)),
];

/** {@linkcode HOSTILE_NAMES} plus absolute paths into `outside`. */
export function hostileNames(outside?: string): string[] {
  if (outside === undefined) return [...HOSTILE_NAMES];
  return [
    ...HOSTILE_NAMES,
    `${outside}/pwned`,
    `${outside}/../pwned`,
    `${outside}\\pwned`,
  ];
}

/** Legal but awkward names: stored inside the folder like any other. */
export const ODD_NAMES: readonly string[] = [
  "seed.bin",
  "a.bin",
  "__proto__",
  "constructor",
  " ",
  "-rf",
  "~",
  "..evil",
  "evil..",
  "%2e%2e%2fevil",
  "é",
  "x".repeat(MAX_NAME_BYTES),
];
