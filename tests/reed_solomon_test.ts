import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { kernelText, ShardMultiplier } from "../engine/parity/_kernel.ts";
import { encodingMatrix } from "../engine/parity/_matrix.ts";
import { assembleWat } from "../engine/parity/_wat.ts";
import {
  gfDiv,
  gfMul,
  gfPow,
  mulTable,
  nibbleTables,
} from "../engine/parity/galois.ts";
import {
  damagedShards,
  MAX_SHARDS,
  ReedSolomon,
} from "../engine/parity/reed_solomon.ts";

// ---- helpers ----------------------------------------------------------------

/** Seed for the random tests: FTV_RS_SEED when readable, else a fresh one. */
function baseSeed(): number {
  const env = { name: "env", variable: "FTV_RS_SEED" } as const;
  if (Deno.permissions.querySync(env).state === "granted") {
    const given = Deno.env.get("FTV_RS_SEED");
    if (given) return Number(given) >>> 0;
  }
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}

/** mulberry32: small, fast, and replayable from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs `check` with a seed, naming the seed (and how to replay it) on failure. */
function withSeed(seed: number, check: (rand: () => number) => void): void {
  try {
    check(random(seed));
  } catch (error) {
    throw new Error(
      `failed with seed ${seed} (replay: FTV_RS_SEED=${seed} deno test --allow-env tests/reed_solomon_test.ts)`,
      { cause: error },
    );
  }
}

function int(rand: () => number, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

function bytes(rand: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = rand() * 256;
  return out;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Asserts equal bytes; formats them only when they differ (hex is slow). */
function assertBytes(got: Uint8Array, want: Uint8Array, message: string) {
  if (got.length === want.length && got.every((b, i) => b === want[i])) return;
  assert.equal(hex(got), hex(want), message);
}

/** Every subset of 0..n-1 with at most `most` members, smallest first. */
function* subsets(n: number, most: number): Generator<number[]> {
  for (let size = 0; size <= most; size++) yield* combinations(n, size, 0);
}

function* combinations(
  n: number,
  size: number,
  from: number,
): Generator<number[]> {
  if (size === 0) {
    yield [];
    return;
  }
  for (let i = from; i <= n - size; i++) {
    for (const rest of combinations(n, size - 1, i + 1)) yield [i, ...rest];
  }
}

function choose(n: number, r: number): number {
  let out = 1;
  for (let i = 0; i < r; i++) out = out * (n - i) / (i + 1);
  return out;
}

/** Parity the slow way: each byte through `gfMul`, short shards zero-padded. */
function referenceParity(
  data: readonly Uint8Array[],
  m: number,
  shardSize: number,
): Uint8Array[] {
  const k = data.length;
  const matrix = encodingMatrix(k, m);
  return Array.from({ length: m }, (_, r) => {
    const out = new Uint8Array(shardSize);
    data.forEach((shard, c) => {
      const factor = matrix[(k + r) * k + c]!;
      for (let i = 0; i < shard.length; i++) {
        out[i]! ^= gfMul(factor, shard[i]!);
      }
    });
    return out;
  });
}

/** A random group: k shards of `shardSize`, the last `lastLength` long. */
function makeData(
  rand: () => number,
  k: number,
  shardSize: number,
  lastLength: number,
): Uint8Array[] {
  return Array.from(
    { length: k },
    (_, i) => bytes(rand, i === k - 1 ? lastLength : shardSize),
  );
}

/**
 * Loses or damages the shards in `pattern` (a coin for each), rebuilds them
 * (damage found through CRC-32s or named in `missing`), and checks every
 * rebuilt shard bit for bit, the short last one with zeros after its end.
 */
function checkPattern(
  rand: () => number,
  rs: ReedSolomon,
  original: readonly Uint8Array[],
  crc32s: readonly number[],
  pattern: readonly number[],
): void {
  const shards: (Uint8Array | undefined)[] = original.map((s) => s.slice());
  const named: number[] = [];
  const useCrc = rand() < 0.5;
  for (const i of pattern) {
    const shard = shards[i]!;
    if (rand() < 0.5 || shard.length === 0) {
      shards[i] = undefined;
    } else {
      shard[int(rand, 0, shard.length - 1)]! ^= int(rand, 1, 255);
      if (!useCrc) named.push(i);
    }
  }
  const repair = rs.reconstruct(
    shards,
    useCrc ? { crc32s } : { missing: named },
  );
  assert.deepEqual(repair, { ok: true, rebuilt: [...pattern] }, `${pattern}`);
  for (const i of pattern) {
    const want = original[i]!;
    const got = shards[i]!;
    assertBytes(
      got.subarray(0, want.length),
      want,
      `shard ${i} of pattern ${pattern}`,
    );
    assert.ok(got.subarray(want.length).every((b) => b === 0), "padding");
  }
}

// ---- GF(2^8) ------------------------------------------------------------------

Deno.test({
  name: "gfMul() agrees with shift-and-add multiplication for all 65536 pairs",
  permissions: "none",
  fn() {
    const slow = (a: number, b: number) => {
      let product = 0;
      for (; b; b >>= 1) {
        if (b & 1) product ^= a;
        a <<= 1;
        if (a & 0x100) a ^= 0x11d;
      }
      return product;
    };
    for (let a = 0; a < 256; a++) {
      const table = mulTable(a);
      const nibbles = nibbleTables(a, new Uint8Array(32));
      for (let b = 0; b < 256; b++) {
        const want = slow(a, b);
        assert.equal(gfMul(a, b), want, `${a} * ${b}`);
        assert.equal(table[b], want);
        assert.equal(nibbles[b & 15]! ^ nibbles[16 + (b >> 4)]!, want);
        if (b !== 0) assert.equal(gfMul(gfDiv(a, b), b), a, `${a} / ${b}`);
      }
    }
    assert.equal(gfPow(2, 8), 29);
    assert.equal(gfPow(0, 0), 1);
    assert.equal(gfPow(7, 255), 1);
    assert.throws(() => gfDiv(1, 0), RangeError);
  },
});

// ---- the kernel -------------------------------------------------------------

Deno.test({
  name:
    "ShardMultiplier gives the scalar products with relaxed and plain swizzles",
  permissions: "none",
  async fn(t) {
    const rand = random(baseSeed());
    for (const relaxed of [true, false]) {
      await t.step(relaxed ? "relaxed swizzle" : "plain swizzle", () => {
        // Sizes straddle the 32-byte step and the 16 KiB block.
        for (const size of [1, 31, 32, 33, 512, 16384, 16384 + 37, 40000]) {
          const rows = int(rand, 1, 7);
          const cols = int(rand, 1, 9);
          const matrix = bytes(rand, rows * cols);
          const inputs = Array.from(
            { length: cols },
            (_, c) => bytes(rand, c === cols - 1 ? int(rand, 0, size) : size),
          );
          const outputs = Array.from({ length: rows }, () => bytes(rand, size));
          new ShardMultiplier(matrix, rows, cols, { relaxed }).apply(
            inputs,
            outputs,
            size,
          );
          for (let r = 0; r < rows; r++) {
            const want = new Uint8Array(size);
            inputs.forEach((input, c) => {
              const factor = matrix[r * cols + c]!;
              input.forEach((b, i) => want[i]! ^= gfMul(factor, b));
            });
            assertBytes(outputs[r]!, want, `size ${size} row ${r}`);
          }
        }
      });
    }
  },
});

Deno.test({
  name: "assembleWat() refuses text outside its subset with a SyntaxError",
  permissions: "none",
  fn() {
    assert.ok(WebAssembly.validate(assembleWat(kernelText(false))));
    assert.throws(
      () => assembleWat(`(module (func i32.frobnicate))`),
      { name: "SyntaxError", message: /unknown instruction "i32.frobnicate"/ },
    );
    assert.throws(
      () => assembleWat(`(module (func br $nowhere))`),
      SyntaxError,
    );
    assert.throws(() => assembleWat(`(module`), SyntaxError);
  },
});

// ---- the code -----------------------------------------------------------------

Deno.test({
  name:
    "ReedSolomon.encode() gives reed-solomon-erasure's parity byte for byte",
  permissions: "none",
  fn() {
    // Parity from @digitaldefiance/reed-solomon-erasure.wasm 1.0.2 (the Rust
    // crate, Backblaze's matrix) for data byte j of shard i = i*37 + j*11 + 5.
    const vectors: [number, number, string[]][] = [
      [4, 2, ["cc8485f24adb3cd7", "9ba1418882bb3fff"]],
      [10, 4, [
        "894ba8c9af9ca2b2",
        "099c7d5ab16fad8e",
        "c5356be8b1ecae95",
        "3ae886fc0629b3d6",
      ]],
      [1, 2, ["05101b26313c4752", "05101b26313c4752"]],
    ];
    for (const [k, m, want] of vectors) {
      const data = Array.from(
        { length: k },
        (_, i) => Uint8Array.from({ length: 8 }, (_, j) => i * 37 + j * 11 + 5),
      );
      assert.deepEqual(new ReedSolomon(k, m).encode(data).map(hex), want);
    }
  },
});

Deno.test({
  name:
    "ReedSolomon rebuilds every pattern of up to m lost or damaged shards bit-exact",
  permissions: "none",
  fn() {
    const seed = baseSeed();
    // Small groups, every pattern; the short last chunk in each.
    const groups: [number, number][] = [
      [1, 1],
      [1, 3],
      [2, 1],
      [3, 3],
      [5, 4],
      [16, 2],
      [8, 4],
      [12, 3],
    ];
    groups.forEach(([k, m], g) =>
      withSeed(seed + g, (rand) => {
        const rs = new ReedSolomon(k, m);
        const shardSize = int(rand, 1, 700);
        const data = makeData(rand, k, shardSize, int(rand, 0, shardSize));
        const parity = rs.encode(data);
        // With one data shard and no parity buffers, that shard sets the size.
        const size = k === 1 ? data[0]!.length : shardSize;
        assert.deepEqual(
          parity.map(hex),
          referenceParity(data, m, size).map(hex),
        );
        const all = [...data, ...parity];
        const crc32s = all.map((s) => crc32(s));
        let count = 0;
        for (const pattern of subsets(k + m, m)) {
          checkPattern(rand, rs, all, crc32s, pattern);
          count++;
        }
        let want = 0;
        for (let s = 0; s <= m; s++) want += choose(k + m, s);
        assert.equal(count, want);
      })
    );
  },
});

Deno.test({
  name:
    "ReedSolomon rebuilds random groups, sizes and losses (bounded to about 1.5 s)",
  permissions: "none",
  fn() {
    const seed = baseSeed();
    const until = performance.now() + 1500;
    for (let round = 0; round < 1000 && performance.now() < until; round++) {
      withSeed(seed + round, (rand) => {
        const k = rand() < 0.2 ? int(rand, 1, 3) : int(rand, 1, 40);
        const m = int(rand, 0, Math.min(10, MAX_SHARDS - k));
        const shardSize = rand() < 0.3 ? int(rand, 1, 64) : int(rand, 64, 5000);
        const last = rand() < 0.3 ? shardSize : int(rand, 0, shardSize);
        const rs = new ReedSolomon(k, m);
        const data = makeData(rand, k, shardSize, last);
        const all = [...data, ...rs.encode(data)];
        const crc32s = all.map((s) => crc32(s));
        const total = k + m;
        let patterns = 0;
        for (let s = 0; s <= m; s++) patterns += choose(total, s);
        if (patterns <= 100) {
          for (const p of subsets(total, m)) {
            checkPattern(rand, rs, all, crc32s, p);
          }
        } else {
          for (let i = 0; i < 20; i++) {
            const chosen = new Set<number>();
            const size = int(rand, 0, m);
            while (chosen.size < size) chosen.add(int(rand, 0, total - 1));
            const p = [...chosen].sort((a, b) => a - b);
            checkPattern(rand, rs, all, crc32s, p);
          }
        }
      });
    }
  },
});

Deno.test({
  name:
    "ReedSolomon.reconstruct() reports more than m unusable shards and writes nothing",
  permissions: "none",
  fn() {
    const seed = baseSeed();
    for (let round = 0; round < 60; round++) {
      withSeed(seed + round, (rand) => {
        const k = int(rand, 1, 20);
        const m = int(rand, 0, 6);
        const rs = new ReedSolomon(k, m);
        const data = makeData(rand, k, 300, int(rand, 0, 300));
        const all = [...data, ...rs.encode(data)];
        const crc32s = all.map((s) => crc32(s));
        const chosen = new Set<number>();
        const lose = int(rand, m + 1, k + m);
        while (chosen.size < lose) chosen.add(int(rand, 0, k + m - 1));
        const unusable = [...chosen].sort((a, b) => a - b);
        const shards: (Uint8Array | undefined)[] = all.map((s) => s.slice());
        for (const i of unusable) {
          if (rand() < 0.5 || shards[i]!.length === 0) shards[i] = undefined;
          else shards[i]![0]! ^= 0xff;
        }
        const before = shards.map((s) => s && hex(s));
        const repair = rs.reconstruct(shards, { crc32s });
        assert.equal(repair.ok, false);
        assert.ok(!repair.ok);
        assert.deepEqual(repair.unusable, unusable);
        assert.match(
          repair.reason,
          new RegExp(`^Cannot rebuild shards: ${lose} of ${k + m} are lost`),
        );
        assert.deepEqual(shards.map((s) => s && hex(s)), before);
      });
    }
  },
});

Deno.test({
  name: "ReedSolomon with one data shard keeps copies as parity",
  permissions: "none",
  fn() {
    const rs = new ReedSolomon(1, 3);
    const data = Uint8Array.from({ length: 600 }, (_, i) => i * 7);
    const parity = rs.encode([data]);
    for (const p of parity) assert.equal(hex(p), hex(data));
    const shards = [undefined, undefined, undefined, parity[2]];
    assert.deepEqual(rs.reconstruct(shards), { ok: true, rebuilt: [0, 1, 2] });
    assert.equal(hex(shards[0]!), hex(data));
  },
});

Deno.test({
  name: "ReedSolomon with no parity encodes nothing and rebuilds nothing",
  permissions: "none",
  fn() {
    const rs = new ReedSolomon(3, 0);
    const data = [new Uint8Array(4), new Uint8Array(4), new Uint8Array(2)];
    assert.deepEqual(rs.encode(data), []);
    assert.deepEqual(rs.reconstruct([...data]), { ok: true, rebuilt: [] });
    const repair = rs.reconstruct([data[0], undefined, data[2]]);
    assert.equal(repair.ok, false);
    assert.ok(!repair.ok && repair.reason.includes("parity covers 0"));
  },
});

Deno.test({
  name: "ReedSolomon refuses shard counts outside 1 + 0 .. 255 with RangeError",
  permissions: "none",
  async fn(t) {
    const bad: [number, number][] = [
      [0, 2],
      [-1, 2],
      [1.5, 2],
      [4, -1],
      [4, 0.5],
      [200, 56],
      [255, 1],
      [NaN, 1],
    ];
    for (const [k, m] of bad) {
      await t.step(`${k} + ${m}`, () => {
        assert.throws(() => new ReedSolomon(k, m), {
          name: "RangeError",
          message: /^Cannot create Reed-Solomon code: /,
        });
      });
    }
    await t.step("223 + 32 = 255 works", () => {
      const rs = new ReedSolomon(223, 32);
      const rand = random(7);
      const data = makeData(rand, 223, 64, 64);
      const shards: (Uint8Array | undefined)[] = [...data, ...rs.encode(data)];
      const lost = Array.from({ length: 32 }, (_, i) => i * 7);
      for (const i of lost) shards[i] = undefined;
      assert.deepEqual(rs.reconstruct(shards), { ok: true, rebuilt: lost });
      for (const i of lost.filter((i) => i < 223)) {
        assert.equal(hex(shards[i]!), hex(data[i]!));
      }
    });
  },
});

Deno.test({
  name: "ReedSolomon refuses shards of unequal length and wrong counts",
  permissions: "none",
  async fn(t) {
    const rs = new ReedSolomon(3, 2);
    const full = () => new Uint8Array(512);
    const cases: [string, () => unknown, RegExp][] = [
      [
        "a middle data shard shorter",
        () => rs.encode([full(), new Uint8Array(511), full()]),
        /^Cannot encode: shard 1 has 511 bytes, the others 512/,
      ],
      [
        "the last data shard longer",
        () => rs.encode([full(), full(), new Uint8Array(513)]),
        /^Cannot encode: shard 0 has 512 bytes, the others 513/,
      ],
      [
        "a parity buffer of another size",
        () =>
          rs.encode([full(), full(), full()], [full(), new Uint8Array(500)]),
        /^Cannot encode: shard 4 has 500 bytes/,
      ],
      [
        "two data shards",
        () => rs.encode([full(), full()]),
        /^Cannot encode: 2 data shards given, the code has 3/,
      ],
      [
        "one parity buffer",
        () => rs.encode([full(), full(), full()], [full()]),
        /^Cannot encode: 1 parity buffers given, the code has 2/,
      ],
      [
        "present shards of unequal length",
        () =>
          rs.reconstruct([
            full(),
            new Uint8Array(100),
            full(),
            full(),
            undefined,
          ]),
        /^Cannot reconstruct: shard 1 has 100 bytes, the others 512/,
      ],
      [
        "a spare shard of another size, nothing missing",
        () =>
          rs.reconstruct([full(), full(), full(), full(), new Uint8Array(3)]),
        /^Cannot reconstruct: shard 4 has 3 bytes, the others 512/,
      ],
      [
        "a rebuild buffer of another size",
        () =>
          rs.reconstruct([new Uint8Array(7), full(), full(), full(), full()], {
            missing: [0],
          }),
        /^Cannot reconstruct: shard 0 has 7 bytes, the others 512/,
      ],
      [
        "four shards",
        () => rs.reconstruct([full(), full(), full(), full()]),
        /^Cannot reconstruct: 4 shards given, the code has 5/,
      ],
      [
        "a missing index past the end",
        () =>
          rs.reconstruct([full(), full(), full(), full(), full()], {
            missing: [5],
          }),
        /^Cannot reconstruct: missing shard "5" is outside 0..4/,
      ],
      [
        "CRC-32s for fewer shards",
        () =>
          rs.reconstruct([full(), full(), full(), full(), full()], {
            crc32s: [1, 2],
          }),
        /^Cannot check shards: 2 CRC-32s for 5 shards/,
      ],
    ];
    for (const [name, call, message] of cases) {
      await t.step(name, () => {
        assert.throws(call, { name: "RangeError", message });
      });
    }
  },
});

Deno.test({
  name:
    "ReedSolomon treats a short last chunk as zero-padded and fills only its buffer",
  permissions: "none",
  fn() {
    const rs = new ReedSolomon(2, 2);
    const data = [new Uint8Array(512).fill(9), Uint8Array.of(0xab)];
    const parity = rs.encode(data);
    assert.deepEqual(
      parity.map(hex),
      rs.encode([data[0]!, Uint8Array.of(0xab, ...new Uint8Array(511))]).map(
        hex,
      ),
    );
    // Lost and not given a buffer: a new one of the shard size, zeros after.
    const allocated = [data[0], undefined, parity[0], parity[1]];
    assert.deepEqual(rs.reconstruct(allocated), { ok: true, rebuilt: [1] });
    assert.equal(allocated[1]!.length, 512);
    assert.equal(allocated[1]![0], 0xab);
    assert.ok(allocated[1]!.subarray(1).every((b) => b === 0));
    // Given a buffer of its real length: only that is written.
    const exact = [undefined, new Uint8Array(1), parity[0], parity[1]];
    assert.deepEqual(
      rs.reconstruct(exact, { missing: [1] }),
      { ok: true, rebuilt: [0, 1] },
    );
    assert.deepEqual(exact[1], Uint8Array.of(0xab));
    assert.equal(hex(exact[0]!), hex(data[0]!));
  },
});

Deno.test({
  name: "ReedSolomon.reconstruct() with dataOnly leaves missing parity alone",
  permissions: "none",
  fn() {
    const rs = new ReedSolomon(4, 2);
    const rand = random(11);
    const data = makeData(rand, 4, 1000, 1000);
    const parity = rs.encode(data);
    const shards = [data[0], undefined, data[2], data[3], undefined, parity[1]];
    assert.deepEqual(rs.reconstruct(shards, { dataOnly: true }), {
      ok: true,
      rebuilt: [1],
    });
    assert.equal(shards[4], undefined);
    assert.equal(hex(shards[1]!), hex(data[1]!));
  },
});

Deno.test({
  name: "damagedShards() names the shards whose CRC-32 does not match",
  permissions: "none",
  fn() {
    const shards = [Uint8Array.of(1, 2), undefined, Uint8Array.of(3)];
    const crc32s = [crc32(shards[0]!), 0, crc32(shards[2]!)];
    assert.deepEqual(damagedShards(shards, crc32s), []);
    shards[2]![0] = 4;
    assert.deepEqual(damagedShards(shards, crc32s), [2]);
  },
});
