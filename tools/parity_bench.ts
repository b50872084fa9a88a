/**
 * Reed-Solomon speed on one core: encode (all parity of a group) and decode
 * (two lost data shards rebuilt) for 8+2, 16+2 and 32+4 groups of 1 MiB
 * shards, in MB/s of data shards (k x shard size / time). Rows are ftv's
 * code (`engine/parity/`), the other ways to write it in TypeScript, and
 * any npm Reed-Solomon package that the import map resolves, all measured
 * in the same run. Each candidate's output is checked: decode must give
 * back the lost shards, and encoders on Backblaze's matrix must give ftv's
 * parity.
 *
 *     deno run tools/parity_bench.ts                  # ftv and TypeScript rows
 *     deno run -A --config DIR/deno.json tools/parity_bench.ts   # + npm rows
 *
 * `engine/parity/NOTES.md` says how DIR is set up and what was measured.
 * Flags: `--reps N` timed runs per row (best and median shown, default 5),
 * `--shard BYTES` shard size (default 1 MiB), `--groups 16+2,...`.
 *
 * @module
 */

import { createRequire } from "node:module";
import { ShardMultiplier } from "../engine/parity/_kernel.ts";
import { encodingMatrix, invert, multiply } from "../engine/parity/_matrix.ts";
import { mulTable } from "../engine/parity/galois.ts";
import { ReedSolomon } from "../engine/parity/reed_solomon.ts";

interface Group {
  readonly k: number;
  readonly m: number;
  readonly shard: number;
  /** The k data shards. */
  readonly data: Uint8Array[];
  /** ftv's parity of `data`, the reference for candidates on the same matrix. */
  readonly parity: Uint8Array[];
  /** Indices of the data shards the decode rows lose. */
  readonly lost: readonly number[];
}

/** One way to encode and decode; `undefined` for what it cannot do. */
interface Runner {
  /** Computes the group's parity; returns it in ftv's shard order. */
  encode(): Promise<Uint8Array[]> | Uint8Array[];
  /** Rebuilds the lost data shards from the rest; returns them in `lost` order. */
  decode?(): Promise<Uint8Array[]> | Uint8Array[];
  /** False when the candidate uses another matrix (its parity differs). */
  readonly sameMatrix: boolean;
}

interface Candidate {
  readonly name: string;
  readonly kind: string;
  /** A runner for the group, or why there is none. */
  prepare(group: Group): Promise<Runner | string> | Runner | string;
}

const MiB = 1024 * 1024;
const args = parseArgs(Deno.args);

// ---- ftv and plain TypeScript ------------------------------------------------

/** Rows `rows` of the encoding matrix times the inverse of rows `inputs`. */
function decodeMatrix(k: number, m: number, inputs: number[], rows: number[]) {
  const full = encodingMatrix(k, m);
  const pick = (indices: number[]) => {
    const out = new Uint8Array(indices.length * k);
    indices.forEach((index, r) =>
      out.set(full.subarray(index * k, index * k + k), r * k)
    );
    return out;
  };
  return multiply(pick(rows), invert(pick(inputs), k), rows.length, k, k);
}

/** The first k shards that are not lost: what every decoder here reads. */
function survivors(group: Group): number[] {
  const out: number[] = [];
  for (let i = 0; out.length < group.k; i++) {
    if (!group.lost.includes(i)) out.push(i);
  }
  return out;
}

function shardAt(group: Group, index: number): Uint8Array {
  return index < group.k ? group.data[index]! : group.parity[index - group.k]!;
}

/** Runs a `rows` x `cols` matrix product over shards, as the TS rows do it. */
type Apply = (
  matrix: Uint8Array,
  rows: number,
  inputs: Uint8Array[],
  outputs: Uint8Array[],
) => void;

function matrixRunner(group: Group, apply: Apply): Runner {
  const { k, m, shard } = group;
  const parityRows = encodingMatrix(k, m).subarray(k * k);
  const inputs = survivors(group);
  const decoding = decodeMatrix(k, m, inputs, [...group.lost]);
  const parity = Array.from({ length: m }, () => new Uint8Array(shard));
  const rebuilt = group.lost.map(() => new Uint8Array(shard));
  const sources = inputs.map((i) => shardAt(group, i));
  return {
    sameMatrix: true,
    encode: () => (apply(parityRows, m, group.data, parity), parity),
    decode:
      () => (apply(decoding, group.lost.length, sources, rebuilt), rebuilt),
  };
}

/** One 256-byte product table per factor, a byte at a time. */
const applyByteTables: Apply = (matrix, rows, inputs, outputs) => {
  const cols = inputs.length;
  for (let r = 0; r < rows; r++) {
    const out = outputs[r]!;
    for (let c = 0; c < cols; c++) {
      const table = mulTable(matrix[r * cols + c]!);
      const input = inputs[c]!;
      const n = input.length;
      if (c === 0) { for (let i = 0; i < n; i++) out[i] = table[input[i]!]!; }
      else for (let i = 0; i < n; i++) out[i]! ^= table[input[i]!]!;
    }
  }
};

/**
 * Four bytes at a time: four 256-entry `Uint32Array` tables per factor hold
 * the products already shifted into place, so one 32-bit word of output
 * takes four lookups and no byte stores. Needs 4-byte aligned shards.
 */
const applyWordTables: Apply = (matrix, rows, inputs, outputs) => {
  const cols = inputs.length;
  const words = (b: Uint8Array) =>
    new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2);
  const table = new Uint32Array(1024);
  for (let r = 0; r < rows; r++) {
    const out = words(outputs[r]!);
    for (let c = 0; c < cols; c++) {
      const bytes = mulTable(matrix[r * cols + c]!);
      for (let b = 0; b < 256; b++) {
        const p = bytes[b]!;
        table[b] = p;
        table[256 + b] = p << 8;
        table[512 + b] = p << 16;
        table[768 + b] = (p << 24) >>> 0;
      }
      const input = words(inputs[c]!);
      const n = input.length;
      for (let i = 0; i < n; i++) {
        const w = input[i]!;
        const product = table[w & 255]! ^ table[256 + ((w >>> 8) & 255)]! ^
          table[512 + ((w >>> 16) & 255)]! ^ table[768 + (w >>> 24)]!;
        out[i] = c === 0 ? product : out[i]! ^ product;
      }
    }
  }
};

const ftvCandidates: Candidate[] = [
  {
    name: "ftv ReedSolomon",
    kind: "WASM SIMD (relaxed swizzle), chosen",
    prepare(group) {
      const rs = new ReedSolomon(group.k, group.m);
      const parity = Array.from(
        { length: group.m },
        () => new Uint8Array(group.shard),
      );
      const shards: (Uint8Array | undefined)[] = [
        ...group.data,
        ...group.parity,
      ];
      const buffers = group.lost.map(() => new Uint8Array(group.shard));
      const missing = [...group.lost];
      return {
        sameMatrix: true,
        encode: () => rs.encode(group.data, parity),
        decode() {
          group.lost.forEach((index, i) => shards[index] = buffers[i]);
          const repair = rs.reconstruct(shards, { missing });
          if (!repair.ok) throw new Error(repair.reason);
          return group.lost.map((index) => shards[index]!);
        },
      };
    },
  },
  {
    name: "ftv kernel, plain swizzle",
    kind: "WASM SIMD (i8x16.swizzle)",
    prepare: (group) =>
      matrixRunner(
        group,
        (matrix, rows, inputs, outputs) =>
          new ShardMultiplier(matrix, rows, inputs.length, { relaxed: false })
            .apply(inputs, outputs, group.shard),
      ),
  },
  {
    name: "TS, byte tables",
    kind: "pure TS, 256-byte table per factor",
    prepare: (group) => matrixRunner(group, applyByteTables),
  },
  {
    name: "TS, word tables",
    kind: "pure TS, 4 bytes per lookup round",
    prepare: (group) => matrixRunner(group, applyWordTables),
  },
];

// ---- npm packages, when the import map has them --------------------------------

/** Imports `name` through the import map in force, or says why not. */
async function load(name: string): Promise<Record<string, unknown> | string> {
  try {
    return await import(name);
  } catch (error) {
    return `not loaded (${String(error).split("\n")[0]!.slice(0, 60)}...)`;
  }
}

/** All shards back to back, as the reed-solomon-erasure bindings want them. */
function contiguous(group: Group): Uint8Array {
  const { k, m, shard } = group;
  const all = new Uint8Array((k + m) * shard);
  group.data.forEach((d, i) => all.set(d, i * shard));
  group.parity.forEach((p, i) => all.set(p, (k + i) * shard));
  return all;
}

interface ReedSolomonErasure {
  encode(shards: Uint8Array, dataShards: number, parityShards: number): number;
  reconstruct(
    shards: Uint8Array,
    dataShards: number,
    parityShards: number,
    available: boolean[],
  ): number;
}

/**
 * reed-solomon-erasure (Rust) in WASM. Its `reconstruct` answers "too few
 * shards present" on most calls after an instance's first, so each decode
 * gets a fresh instance of the compiled module (about 0.7 ms, timed too).
 */
function erasureRunner(
  fresh: () => ReedSolomonErasure,
  group: Group,
): Runner {
  const { k, m, shard } = group;
  const all = contiguous(group);
  const available = Array.from(
    { length: k + m },
    (_, i) => !group.lost.includes(i),
  );
  const check = (code: number) => {
    if (code !== 0) throw new Error(`reed-solomon-erasure returned ${code}`);
  };
  const view = (i: number) => all.subarray(i * shard, (i + 1) * shard);
  const encoder = fresh();
  return {
    sameMatrix: true,
    encode() {
      check(encoder.encode(all, k, m));
      return Array.from({ length: m }, (_, i) => view(k + i));
    },
    decode() {
      for (const i of group.lost) view(i).fill(0);
      check(fresh().reconstruct(all, k, m, available));
      return group.lost.map(view);
    },
  };
}

const npmCandidates: Candidate[] = [
  {
    // @shelby-protocol/reed-solomon embeds the very same WASM bytes.
    name: "@digitaldefiance/reed-solomon-erasure.wasm",
    kind: "WASM (Rust reed-solomon-erasure), MIT",
    async prepare(group) {
      const name = "@digitaldefiance/reed-solomon-erasure.wasm";
      const mod = await load(name);
      if (typeof mod === "string") return mod;
      const url = new URL(
        "reed_solomon_erasure_bg.wasm",
        import.meta.resolve(name),
      );
      const compiled = new WebAssembly.Module(await Deno.readFile(url));
      // The class's constructor takes an instance's exports (fromBytes does this).
      const Binding = mod.ReedSolomonErasure as new (
        exports: WebAssembly.Exports,
      ) => ReedSolomonErasure;
      return erasureRunner(
        () => new Binding(new WebAssembly.Instance(compiled).exports),
        group,
      );
    },
  },
  {
    name: "@ronomon/reed-solomon",
    kind: "native addon (node-gyp: needs a C compiler)",
    prepare(group) {
      const { k, m, shard } = group;
      if (k > 24 || m > 6) return "n/a (at most 24 data and 6 parity shards)";
      let binding: RonomonBinding;
      try {
        const path = new URL(import.meta.resolve("@ronomon/reed-solomon"));
        binding = createRequire(path)(path.pathname) as RonomonBinding;
      } catch (error) {
        return `not loaded (${String(error).split("\n")[0]!.slice(0, 60)}...)`;
      }
      const context = binding.create(k, m);
      const buffer = new Uint8Array(k * shard);
      group.data.forEach((d, i) => buffer.set(d, i * shard));
      const parity = new Uint8Array(m * shard);
      const all = (1 << (k + m)) - 1;
      const dataBits = (1 << k) - 1;
      const lostBits = group.lost.reduce((bits, i) => bits | (1 << i), 0);
      const run = (sources: number, targets: number) =>
        new Promise<void>((resolve, reject) =>
          binding.encode(
            context,
            sources,
            targets,
            buffer,
            0,
            k * shard,
            parity,
            0,
            m * shard,
            (error) => error ? reject(error) : resolve(),
          )
        );
      const view = (b: Uint8Array, i: number) =>
        b.subarray(i * shard, (i + 1) * shard);
      return {
        sameMatrix: false,
        async encode() {
          await run(dataBits, all & ~dataBits);
          return Array.from({ length: m }, (_, i) => view(parity, i));
        },
        async decode() {
          for (const i of group.lost) view(buffer, i).fill(0);
          await run(all & ~lostBits, lostBits);
          return group.lost.map((i) => view(buffer, i));
        },
      };
    },
  },
  {
    name: "@bnb-chain/reed-solomon",
    kind: "pure JS (klauspost port), GPL-3.0, encode only",
    async prepare(group) {
      const mod = await load("@bnb-chain/reed-solomon");
      if (typeof mod === "string") return mod;
      const { k, m, shard } = group;
      const Rs = mod.ReedSolomon as new (
        k: number,
        m: number,
        segment: number,
      ) => { encodeSegment(data: Uint8Array): Uint8Array[] };
      const rs = new Rs(k, m, k * shard);
      const segment = new Uint8Array(k * shard);
      group.data.forEach((d, i) => segment.set(d, i * shard));
      return {
        sameMatrix: true,
        encode: () => rs.encodeSegment(segment).slice(k),
      };
    },
  },
];

interface RonomonBinding {
  create(k: number, m: number): unknown;
  encode(
    context: unknown,
    sources: number,
    targets: number,
    buffer: Uint8Array,
    bufferOffset: number,
    bufferSize: number,
    parity: Uint8Array,
    parityOffset: number,
    paritySize: number,
    callback: (error?: Error) => void,
  ): void;
}

// ---- measuring -----------------------------------------------------------------

function makeGroup(k: number, m: number, shard: number): Group {
  let seed = 0x9e3779b9 ^ (k * 131 + m);
  const data = Array.from({ length: k }, () => {
    const bytes = new Uint8Array(shard);
    const words = new Uint32Array(bytes.buffer);
    for (let i = 0; i < words.length; i++) {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      words[i] = seed;
    }
    return bytes;
  });
  const parity = new ReedSolomon(k, m).encode(data);
  return { k, m, shard, data, parity, lost: [1, Math.floor(k / 2)] };
}

function sameBytes(
  a: readonly Uint8Array[],
  b: readonly Uint8Array[],
): boolean {
  return a.length === b.length &&
    a.every((x, i) =>
      x.length === b[i]!.length && x.every((v, j) => v === b[i]![j])
    );
}

/**
 * MB/s of data shards: after one warm-up call, `reps` timed runs, each
 * repeating the call for at least 100 ms (so small shards time many calls
 * and the WebAssembly has tiered up); best and median run.
 */
async function measure(
  group: Group,
  op: () => Promise<unknown> | unknown,
): Promise<{ best: number; median: number; runs: number }> {
  await op();
  const rates: number[] = [];
  const started = performance.now();
  for (let i = 0; i < args.reps; i++) {
    const t0 = performance.now();
    let calls = 0;
    let seconds = 0;
    do {
      await op();
      calls++;
      seconds = (performance.now() - t0) / 1000;
    } while (seconds < 0.1);
    rates.push(calls * group.k * group.shard / 1e6 / seconds);
    if (performance.now() - started > 3000) break; // slow rows: fewer runs
  }
  rates.sort((a, b) => a - b);
  return {
    best: rates[rates.length - 1]!,
    median: rates[Math.floor(rates.length / 2)]!,
    runs: rates.length,
  };
}

function parseArgs(argv: string[]) {
  const get = (flag: string) => {
    const at = argv.indexOf(flag);
    return at >= 0 ? argv[at + 1] : undefined;
  };
  const groups = (get("--groups") ?? "8+2,16+2,32+4").split(",").map((g) => {
    const [k, m] = g.split("+").map(Number) as [number, number];
    return { k, m };
  });
  return {
    reps: Number(get("--reps") ?? 5),
    shard: Number(get("--shard") ?? MiB),
    groups,
  };
}

const cell = (text: string, width: number) => text.padEnd(width);
const rate = (r: { best: number; median: number }) =>
  `${r.best.toFixed(0).padStart(6)} (${r.median.toFixed(0).padStart(5)})`;

console.log(
  `Reed-Solomon on one core: MB/s of data shards, best (median) of up to ${args.reps} runs of >= 100 ms, ` +
    `${args.shard} B shards, decode = 2 lost data shards. Deno ${Deno.version.deno}, ` +
    `V8 ${Deno.version.v8}, ${navigator.hardwareConcurrency} cores visible.`,
);
for (const { k, m } of args.groups) {
  const group = makeGroup(k, m, args.shard);
  console.log(`\n${k}+${m}`);
  console.log(
    `${cell("candidate", 44)}${cell("encode", 16)}${cell("decode", 16)}${
      cell("checked", 22)
    }kind`,
  );
  for (const candidate of [...ftvCandidates, ...npmCandidates]) {
    const runner = await candidate.prepare(group);
    if (typeof runner === "string") {
      console.log(`${cell(candidate.name, 44)}${runner}`);
      continue;
    }
    const encoded = await runner.encode();
    const notes: string[] = [];
    if (runner.sameMatrix) {
      notes.push(
        sameBytes(encoded, group.parity) ? "parity=ftv" : "PARITY DIFFERS",
      );
    }
    const enc = await measure(group, () => runner.encode());
    let dec = "n/a";
    if (runner.decode) {
      const rebuilt = await runner.decode();
      const want = group.lost.map((i) => group.data[i]!);
      notes.push(sameBytes(rebuilt, want) ? "decode ok" : "DECODE WRONG");
      dec = rate(await measure(group, () => runner.decode!()));
    }
    console.log(
      `${cell(candidate.name, 44)}${cell(rate(enc), 16)}${cell(dec, 16)}${
        cell(notes.join(", "), 22)
      }${candidate.kind}`,
    );
  }
}
