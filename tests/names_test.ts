import assert from "node:assert/strict";
import {
  MAX_NAME_BYTES,
  META_DIR,
  nameRefusal,
  PART_SUFFIX,
  STATE_SUFFIX,
} from "../protocol/names.ts";

const encoder = new TextEncoder();

/** A name of exactly `bytes` UTF-8 bytes, mixing one-, two- and three-byte characters. */
function nameOfBytes(bytes: number): string {
  let name = "数据é"; // 3 + 3 + 2 bytes
  while (encoder.encode(name).length < bytes) name += "x";
  assert.equal(encoder.encode(name).length, bytes);
  return name;
}

const ACCEPTED: string[] = [
  "report.txt",
  "résumé.pdf",
  "数据.bin",
  "a b.txt",
  ".bashrc",
  "...",
  "..x",
  "x..",
  "-rf",
  "~",
  "name with 'quotes' and \"doubles\"",
  "emoji 🚀.png",
  "ftv-part",
  "x.ftv-part.txt",
  ".ftvrc",
  "ab:c", // a colon after two letters is no drive letter
  "1:x", // nor is a digit before a colon
  nameOfBytes(MAX_NAME_BYTES),
  "x".repeat(MAX_NAME_BYTES),
];

const REFUSED: [label: string, name: string][] = [
  ["empty", ""],
  ["dot", "."],
  ["dot dot", ".."],
  ["parent then name", "../x"],
  ["parent at the end", "x/.."],
  ["two components", "a/b"],
  ["trailing slash", "x/"],
  ["absolute path", "/etc/passwd"],
  ["a lone slash", "/"],
  ["backslash parent", "..\\x"],
  ["backslash components", "a\\b"],
  ["UNC path", "\\\\server\\share"],
  ["drive-relative", "C:evil"],
  ["drive-absolute", "c:\\x"],
  ["drive with slash", "D:/x"],
  ["bare drive", "z:"],
  ["NUL inside", "a\u0000b"],
  ["NUL alone", "\u0000"],
  ["newline", "\n"],
  ["newline inside", "a\nb.txt"],
  ["carriage return", "x\r"],
  ["tab", "a\tb"],
  ["escape sequence", "\u001b[31mred"],
  ["DEL", "x\u007f"],
  ["C1 CSI", "x\u009b2J"],
  ["C1 NEL", "a\u0085b"],
  ["lone high surrogate", "a\ud800.txt"],
  ["lone low surrogate", "a\udfff.txt"],
  ["one byte too long, ASCII", "x".repeat(MAX_NAME_BYTES + 1)],
  ["one byte too long, multibyte", nameOfBytes(MAX_NAME_BYTES + 1)],
  ["255 characters but more bytes", "é".repeat(MAX_NAME_BYTES)],
  ["part file", `x${PART_SUFFIX}`],
  ["state file", `x${STATE_SUFFIX}`],
  ["bare part suffix", PART_SUFFIX],
  ["bare state suffix", STATE_SUFFIX],
  ["meta folder", META_DIR],
];

Deno.test({
  name: "nameRefusal() accepts ordinary names, Unicode included",
  permissions: "none",
  async fn(t) {
    for (const name of ACCEPTED) {
      await t.step(JSON.stringify(name).slice(0, 60), () => {
        assert.equal(nameRefusal(name), undefined);
      });
    }
  },
});

Deno.test({
  name: "nameRefusal() refuses names that could escape or clash",
  permissions: "none",
  async fn(t) {
    assert.ok(REFUSED.length >= 20);
    for (const [label, name] of REFUSED) {
      await t.step(label, () => {
        const refused = nameRefusal(name);
        assert.equal(refused?.code, "bad_name", `accepted ${label}`);
        assert.notEqual(refused.reason, "");
      });
    }
  },
});
