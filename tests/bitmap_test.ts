import assert from "node:assert/strict";
import { ChunkBitmap } from "../engine/bitmap.ts";

Deno.test({
  name: "ChunkBitmap starts empty and tracks added chunks",
  permissions: "none",
  fn() {
    const bitmap = new ChunkBitmap(10);
    assert.equal(bitmap.size, 10);
    assert.equal(bitmap.count, 0);
    assert.equal(bitmap.complete, false);
    assert.deepEqual(bitmap.missing(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

    for (const seq of [0, 7, 8, 9]) bitmap.add(seq);
    assert.equal(bitmap.count, 4);
    assert.deepEqual(
      Array.from({ length: 10 }, (_, seq) => bitmap.has(seq)),
      [true, false, false, false, false, false, false, true, true, true],
    );
    assert.deepEqual(bitmap.missing(), [1, 2, 3, 4, 5, 6]);
    assert.equal(bitmap.complete, false);
  },
});

Deno.test({
  name: "ChunkBitmap.add() counts a chunk once however often it is added",
  permissions: "none",
  fn() {
    const bitmap = new ChunkBitmap(3);
    bitmap.add(1);
    bitmap.add(1);
    bitmap.add(1);
    assert.equal(bitmap.count, 1);
    assert.deepEqual(bitmap.missing(), [0, 2]);
  },
});

Deno.test({
  name: "ChunkBitmap is complete once every chunk is added, in any order",
  permissions: "none",
  fn() {
    const bitmap = new ChunkBitmap(9);
    for (const seq of [8, 3, 0, 5, 1, 7, 2, 6]) {
      bitmap.add(seq);
      assert.equal(bitmap.complete, false);
    }
    bitmap.add(4);
    assert.equal(bitmap.complete, true);
    assert.equal(bitmap.count, 9);
    assert.deepEqual(bitmap.missing(), []);
  },
});

Deno.test({
  name: "ChunkBitmap of size 0 is complete at once",
  permissions: "none",
  fn() {
    const bitmap = new ChunkBitmap(0);
    assert.equal(bitmap.complete, true);
    assert.deepEqual(bitmap.missing(), []);
    assert.equal(bitmap.has(0), false);
    assert.throws(() => bitmap.add(0), RangeError);
  },
});

Deno.test({
  name: "ChunkBitmap.has() is false outside the bitmap",
  permissions: "none",
  fn() {
    const bitmap = new ChunkBitmap(8);
    for (let seq = 0; seq < 8; seq++) bitmap.add(seq);
    assert.equal(bitmap.has(-1), false);
    assert.equal(bitmap.has(8), false);
    assert.equal(bitmap.has(1000), false);
  },
});

Deno.test({
  name: "ChunkBitmap round-trips through base64",
  permissions: "none",
  async fn(t) {
    for (const size of [0, 1, 7, 8, 9, 1000]) {
      await t.step(`size ${size}`, () => {
        const patterns: [string, (seq: number) => boolean][] = [
          ["none", () => false],
          ["all", () => true],
          ["even", (seq) => seq % 2 === 0],
          ["last", (seq) => seq === size - 1],
          ["every third", (seq) => seq % 3 === 1],
        ];
        for (const [label, pick] of patterns) {
          const bitmap = new ChunkBitmap(size);
          for (let seq = 0; seq < size; seq++) if (pick(seq)) bitmap.add(seq);
          const encoded = bitmap.toBase64();
          assert.equal(encoded.length, Math.ceil(Math.ceil(size / 8) / 3) * 4);
          const decoded = ChunkBitmap.fromBase64(encoded, size);
          assert.equal(decoded.size, size, label);
          assert.equal(decoded.count, bitmap.count, label);
          assert.equal(decoded.complete, bitmap.complete, label);
          assert.deepEqual(decoded.missing(), bitmap.missing(), label);
          assert.equal(decoded.toBase64(), encoded, label);
        }
      });
    }
  },
});

Deno.test({
  name:
    "ChunkBitmap.fromBase64() throws SyntaxError for a length that does not fit",
  permissions: "none",
  async fn(t) {
    const cases: [string, string, number][] = [
      ["one byte for no chunks", new ChunkBitmap(1).toBase64(), 0],
      ["one byte for nine chunks", new ChunkBitmap(8).toBase64(), 9],
      ["two bytes for eight chunks", new ChunkBitmap(9).toBase64(), 8],
      ["empty for one chunk", "", 1],
      ["125 bytes for 1001 chunks", new ChunkBitmap(1000).toBase64(), 1001],
    ];
    for (const [label, encoded, size] of cases) {
      await t.step(label, () => {
        assert.throws(() => ChunkBitmap.fromBase64(encoded, size), SyntaxError);
      });
    }
  },
});

Deno.test({
  name: "ChunkBitmap.add() throws RangeError outside 0..size-1",
  permissions: "none",
  async fn(t) {
    const bitmap = new ChunkBitmap(9);
    for (const seq of [-1, 9, 10, 1.5, Number.NaN, Infinity]) {
      await t.step(String(seq), () => {
        assert.throws(() => bitmap.add(seq), RangeError);
      });
    }
    assert.equal(bitmap.count, 0);
  },
});

Deno.test({
  name: "new ChunkBitmap() throws RangeError for an invalid size",
  permissions: "none",
  async fn(t) {
    for (const size of [-1, 1.5, Number.NaN, Infinity, 2 ** 53]) {
      await t.step(String(size), () => {
        assert.throws(() => new ChunkBitmap(size), RangeError);
      });
    }
  },
});
