import assert from "node:assert/strict";
import {
  type ChunkFate,
  ErrorSimulator,
  REORDER_WINDOW,
} from "../faults/simulator.ts";
import { Logger } from "../base/log.ts";
import { Rng } from "../faults/rng.ts";

function fates(simulator: ErrorSimulator, count: number): ChunkFate[] {
  return Array.from({ length: count }, (_, seq) => simulator.fate(seq));
}

function bitsSet(bytes: Uint8Array): number {
  let n = 0;
  for (let byte of bytes) {
    for (; byte; byte &= byte - 1) n++;
  }
  return n;
}

Deno.test({
  name: "Rng with the same seed gives the same sequence",
  permissions: "none",
  fn() {
    const draw = (rng: Rng) =>
      Array.from({ length: 100 }, () => [rng.next(), rng.int(10)]);
    assert.deepEqual(draw(new Rng(42)), draw(new Rng(42)));
    assert.deepEqual(draw(new Rng(0)), draw(new Rng(0)));
    assert.notDeepEqual(draw(new Rng(42)), draw(new Rng(43)));
  },
});

Deno.test({
  name: "Rng draws floats in [0, 1) and integers in [0, n)",
  permissions: "none",
  fn() {
    const rng = new Rng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) {
      const x = rng.next();
      assert.ok(x >= 0 && x < 1, String(x));
      const k = rng.int(6);
      assert.ok(Number.isInteger(k) && k >= 0 && k < 6, String(k));
      seen.add(k);
    }
    assert.equal(seen.size, 6);
  },
});

Deno.test({
  name: "Rng.shuffle() returns a permutation, reproducibly",
  permissions: "none",
  fn() {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const a = new Rng(9).shuffle([...items]);
    const b = new Rng(9).shuffle([...items]);
    assert.deepEqual(a, b);
    assert.deepEqual([...a].sort((x, y) => x - y), items);
    assert.notDeepEqual(a, items);
  },
});

Deno.test({
  name: "ErrorSimulator with a seed is reproducible",
  permissions: "none",
  fn() {
    const run = () => {
      const simulator = new ErrorSimulator({ errorRate: 0.3, seed: 1234 });
      const order = simulator.order(Array.from({ length: 40 }, (_, i) => i));
      const fate = fates(simulator, 200);
      const bytes = new Uint8Array(64);
      simulator.corrupt(bytes);
      return { order, fate, bytes };
    };
    const first = run();
    assert.deepEqual(run(), first);
    // Both kinds of damage happen at this rate, and most chunks get through.
    assert.ok(first.fate.includes("lose"));
    assert.ok(first.fate.includes("corrupt"));
    const delivered = first.fate.filter((f) => f === "deliver").length;
    assert.ok(delivered > 100 && delivered < 190, String(delivered));
  },
});

Deno.test({
  name: "ErrorSimulator with rate 0 always delivers",
  permissions: "none",
  fn() {
    const simulator = new ErrorSimulator({ errorRate: 0, seed: 5 });
    assert.ok(fates(simulator, 10_000).every((f) => f === "deliver"));
  },
});

Deno.test({
  name: "ErrorSimulator with rate 1 never delivers",
  permissions: "none",
  fn() {
    const simulator = new ErrorSimulator({ errorRate: 1, seed: 5 });
    const drawn = fates(simulator, 10_000);
    assert.ok(!drawn.includes("deliver"));
    assert.ok(drawn.includes("lose") && drawn.includes("corrupt"));
  },
});

Deno.test({
  name: "ErrorSimulator logs each lost or corrupted chunk",
  permissions: "none",
  fn() {
    const lines: string[] = [];
    const log = new Logger("FileTransferServer", {
      sink: (line) => lines.push(line),
    });
    const simulator = new ErrorSimulator({ errorRate: 0.5, seed: 3, log });
    const drawn = fates(simulator, 100);
    const damaged = drawn.flatMap((fate, seq) =>
      fate === "lose"
        ? [`Simulating packet loss for chunk ${seq}`]
        : fate === "corrupt"
        ? [`Simulating data corruption for chunk ${seq}`]
        : []
    );
    assert.ok(damaged.length > 0);
    assert.deepEqual(
      lines.map((line) => line.split(" - ").at(-1)),
      damaged,
    );
  },
});

Deno.test({
  name: "ErrorSimulator.corrupt() flips exactly one bit",
  permissions: "none",
  fn() {
    const simulator = new ErrorSimulator({ seed: 77 });
    for (const length of [1, 2, 17, 4096]) {
      for (let trial = 0; trial < 50; trial++) {
        const original = new Uint8Array(length).map((_, i) => (i * 37) & 0xff);
        const bytes = original.slice();
        simulator.corrupt(bytes);
        const diff = bytes.map((byte, i) => byte ^ original[i]!);
        assert.equal(bitsSet(diff), 1, `length ${length}, trial ${trial}`);
      }
    }
  },
});

Deno.test({
  name: "ErrorSimulator.corrupt() leaves an empty chunk alone",
  permissions: "none",
  fn() {
    const bytes = new Uint8Array(0);
    new ErrorSimulator({ seed: 1 }).corrupt(bytes);
    assert.equal(bytes.length, 0);
  },
});

Deno.test({
  name:
    "ErrorSimulator.order() returns a permutation and leaves its input alone",
  permissions: "none",
  async fn(t) {
    for (const length of [0, 1, 2, 100]) {
      await t.step(`${length} chunks`, () => {
        const seqs = Array.from({ length }, (_, i) => i);
        const simulator = new ErrorSimulator({ seed: 11 });
        const order = simulator.order(seqs);
        assert.deepEqual(seqs, Array.from({ length }, (_, i) => i));
        assert.deepEqual([...order].sort((a, b) => a - b), seqs);
        if (length === 100) assert.notDeepEqual(order, seqs);
      });
    }
  },
});

Deno.test({
  name:
    "ErrorSimulator.order() shuffles within windows, so no chunk goes out after one REORDER_WINDOW further on",
  permissions: "none",
  fn() {
    const seqs = Array.from({ length: 1000 }, (_, i) => i);
    const order = new ErrorSimulator({ seed: 3 }).order(seqs);
    const window = (n: number) => Math.floor(n / REORDER_WINDOW);
    assert.ok(order.every((seq, i) => window(seq) === window(i)));
    assert.ok(order.some((seq, i) => seq !== i));
  },
});

Deno.test({
  name: "ErrorSimulator throws RangeError for an invalid rate",
  permissions: "none",
  async fn(t) {
    for (const errorRate of [-0.1, 1.01, 2, Number.NaN, Infinity]) {
      await t.step(String(errorRate), () => {
        assert.throws(() => new ErrorSimulator({ errorRate }), RangeError);
      });
    }
    assert.equal(new ErrorSimulator().errorRate, 0.1);
  },
});
