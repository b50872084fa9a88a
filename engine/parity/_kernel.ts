/**
 * The hot loop of Reed-Solomon: `out[r] = XOR over c of matrix[r][c] *
 * in[c]`, byte by byte over whole shards, in WebAssembly SIMD.
 *
 * Each factor becomes two 16-byte tables (see `nibbleTables`), and one
 * `i8x16.swizzle` looks up sixteen bytes' low or high nibbles at once, the
 * way ISA-L and klauspost/reedsolomon use PSHUFB. Shards are copied into
 * the module's memory a block at a time (WebAssembly sees only its own
 * memory), the block is multiplied there, and the results are copied out.
 * Measured in `tools/parity_bench.ts` (figures in `NOTES.md`): 5.6 to 8 GB/s
 * of data on one core for 16+2, against about 1 GB/s for the best
 * pure-TypeScript loop.
 *
 * @module
 */

import { assembleWat } from "./_wat.ts";
import { nibbleTables } from "./galois.ts";

/** Bytes of each shard multiplied per call: the working set stays in cache. */
const BLOCK_BYTES = 16 * 1024;
/** Bytes per inner-loop step: two 16-byte vectors. */
const STEP_BYTES = 32;
/** Output rows computed together, widest first, sharing each input load. */
const PASS_ROWS = [4, 2, 1] as const;
const PAGE_BYTES = 65536;

/**
 * WebAssembly text of one pass: rows `row..row+rows-1` of the output block,
 * for `len` bytes. Tables sit at `tables + (col * totalRows + row) * 32`, so
 * the rows of a pass are 32 bytes apart; input column `c` at `input + c *
 * stride`, output row `r` at `output + r * stride`.
 */
function passText(rows: number, swizzle: string): string {
  const acc = (r: number, v: number) => `$acc${r}_${v}`;
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    lines.push(`local.get $t v128.load offset=${32 * r} local.set $low`);
    lines.push(`local.get $t v128.load offset=${32 * r + 16} local.set $high`);
    for (const v of [0, 1]) {
      lines.push(
        `local.get ${acc(r, v)}`,
        `local.get $low local.get $lo${v} ${swizzle} v128.xor`,
        `local.get $high local.get $hi${v} ${swizzle} v128.xor`,
        `local.set ${acc(r, v)}`,
      );
    }
  }
  const clear: string[] = [];
  const store: string[] = [];
  for (let r = 0; r < rows; r++) {
    for (const v of [0, 1]) {
      clear.push(`v128.const i32x4 0 0 0 0 local.set ${acc(r, v)}`);
      store.push(
        `local.get $o local.get ${acc(r, v)} v128.store offset=${16 * v}`,
      );
    }
    store.push("local.get $o local.get $stride i32.add local.set $o");
  }
  const accLocals = Array.from(
    { length: rows * 2 },
    (_, i) => `(local ${acc(i >> 1, i & 1)} v128)`,
  );
  return `
  (func (export "pass${rows}")
    (param $tables i32) (param $input i32) (param $output i32)
    (param $cols i32) (param $totalRows i32) (param $row i32)
    (param $len i32) (param $stride i32)
    (local $i i32) (local $c i32) (local $t i32) (local $p i32) (local $o i32)
    (local $mask v128) (local $x v128) (local $low v128) (local $high v128)
    (local $lo0 v128) (local $hi0 v128) (local $lo1 v128) (local $hi1 v128)
    ${accLocals.join(" ")}
    i32.const 15 i8x16.splat local.set $mask
    block $done
    loop $step
      ;; for i = 0; i < len; i += 32
      local.get $i local.get $len i32.ge_u br_if $done
      ${clear.join("\n      ")}
      local.get $tables local.get $row i32.const 5 i32.shl i32.add local.set $t
      local.get $input local.get $i i32.add local.set $p
      local.get $cols local.set $c
      loop $column
        ;; split 32 input bytes into low and high nibbles, shared by all rows
        local.get $p v128.load local.tee $x
        local.get $mask v128.and local.set $lo0
        local.get $x i32.const 4 i16x8.shr_u local.get $mask v128.and local.set $hi0
        local.get $p v128.load offset=16 local.tee $x
        local.get $mask v128.and local.set $lo1
        local.get $x i32.const 4 i16x8.shr_u local.get $mask v128.and local.set $hi1
        ${lines.join("\n        ")}
        ;; next column: its tables, its input
        local.get $t local.get $totalRows i32.const 5 i32.shl i32.add local.set $t
        local.get $p local.get $stride i32.add local.set $p
        local.get $c i32.const 1 i32.sub local.tee $c br_if $column
      end
      local.get $output local.get $row local.get $stride i32.mul i32.add
      local.get $i i32.add local.set $o
      ${store.join("\n      ")}
      local.get $i i32.const ${STEP_BYTES} i32.add local.set $i
      br $step
    end
    end
  )`;
}

/** The kernel's WebAssembly text, with relaxed or plain swizzles. */
export function kernelText(relaxed: boolean): string {
  const swizzle = relaxed ? "i8x16.relaxed_swizzle" : "i8x16.swizzle";
  const passes = PASS_ROWS.map((rows) => passText(rows, swizzle));
  return `(module\n  (memory (export "memory") 1)${passes.join("")}\n)`;
}

type Pass = (
  tables: number,
  input: number,
  output: number,
  cols: number,
  totalRows: number,
  row: number,
  len: number,
  stride: number,
) => void;

interface Instance {
  readonly memory: WebAssembly.Memory;
  readonly passes: ReadonlyMap<number, Pass>;
}

const instances = new Map<boolean, Instance>();

/**
 * Relaxed swizzle is plain swizzle without the out-of-range rule (one
 * PSHUFB instead of two instructions); our indices are always 0..15, so
 * both give the same bytes. Used when the engine accepts it.
 */
function relaxedSupported(): boolean {
  return WebAssembly.validate(assembleWat(kernelText(true)));
}

/** The kernel's instance, compiled on first use. */
function instance(relaxed: boolean): Instance {
  let found = instances.get(relaxed);
  if (!found) {
    const module = new WebAssembly.Module(assembleWat(kernelText(relaxed)));
    const { exports } = new WebAssembly.Instance(module);
    found = {
      memory: exports.memory as WebAssembly.Memory,
      passes: new Map(PASS_ROWS.map((r) => [r, exports[`pass${r}`] as Pass])),
    };
    instances.set(relaxed, found);
  }
  return found;
}

let defaultRelaxed: boolean | undefined;

/** Options of {@linkcode ShardMultiplier}. */
export interface ShardMultiplierOptions {
  /**
   * Use `i8x16.relaxed_swizzle`; `false` forces the plain swizzle (tests
   * run both).
   * @default whether the engine supports relaxed SIMD
   */
  readonly relaxed?: boolean;
}

/**
 * A `rows` x `cols` matrix over GF(2^8), ready to multiply shards: row `r`
 * of the output is the XOR of `matrix[r][c] * input[c]` over the columns.
 */
export class ShardMultiplier {
  /** Output shards per call. */
  readonly rows: number;
  /** Input shards per call. */
  readonly cols: number;
  #tables: Uint8Array;
  #relaxed: boolean | undefined;

  /** Prepares the `rows` x `cols` row-major `matrix`. */
  constructor(
    matrix: Uint8Array,
    rows: number,
    cols: number,
    options: ShardMultiplierOptions = {},
  ) {
    this.rows = rows;
    this.cols = cols;
    this.#tables = new Uint8Array(rows * cols * 32);
    for (let c = 0; c < cols; c++) {
      for (let r = 0; r < rows; r++) {
        nibbleTables(matrix[r * cols + c]!, this.#tables, (c * rows + r) * 32);
      }
    }
    this.#relaxed = options.relaxed;
  }

  /**
   * Writes the products into `outputs` for `size` bytes. An input shorter
   * than `size` reads as if padded with zeros; an output shorter than `size`
   * gets only its first bytes.
   */
  apply(
    inputs: readonly Uint8Array[],
    outputs: readonly Uint8Array[],
    size: number,
  ): void {
    const { rows, cols } = this;
    if (rows === 0 || size === 0) return;
    defaultRelaxed ??= relaxedSupported();
    const { memory, passes } = instance(this.#relaxed ?? defaultRelaxed);
    const tablesAt = 0;
    const inputAt = this.#tables.length;
    const outputAt = inputAt + cols * BLOCK_BYTES;
    const end = outputAt + rows * BLOCK_BYTES;
    if (memory.buffer.byteLength < end) {
      memory.grow(Math.ceil((end - memory.buffer.byteLength) / PAGE_BYTES));
    }
    const heap = new Uint8Array(memory.buffer);
    heap.set(this.#tables, tablesAt);
    for (let offset = 0; offset < size; offset += BLOCK_BYTES) {
      const n = Math.min(BLOCK_BYTES, size - offset);
      for (let c = 0; c < cols; c++) {
        const source = inputs[c]!;
        const have = Math.max(0, Math.min(n, source.length - offset));
        const at = inputAt + c * BLOCK_BYTES;
        heap.set(source.subarray(offset, offset + have), at);
        if (have < n) heap.fill(0, at + have, at + n);
      }
      // Bytes past n up to the step are stale, but byte i of an output
      // depends only on byte i of the inputs, and those outputs are not read.
      const len = Math.ceil(n / STEP_BYTES) * STEP_BYTES;
      let row = 0;
      for (const width of PASS_ROWS) {
        const pass = passes.get(width)!;
        for (; row + width <= rows; row += width) {
          pass(tablesAt, inputAt, outputAt, cols, rows, row, len, BLOCK_BYTES);
        }
      }
      for (let r = 0; r < rows; r++) {
        const target = outputs[r]!;
        const want = Math.max(0, Math.min(n, target.length - offset));
        const at = outputAt + r * BLOCK_BYTES;
        if (want > 0) target.set(heap.subarray(at, at + want), offset);
      }
    }
  }
}
