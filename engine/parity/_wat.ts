/**
 * A small assembler from WebAssembly text to module bytes, for the subset
 * the parity kernel is written in: one exported memory and exported
 * functions whose bodies are flat instructions (no folded forms) with named
 * params, locals and block labels. Keeping the text as the only source, and
 * assembling it when the module loads, means there are no checked-in bytes
 * that could drift from it.
 *
 * @module
 */

type Sexp = string | Sexp[];

type Immediate =
  | "none"
  | "local"
  | "label"
  | "block"
  | "i32"
  | "memarg"
  | "v128";

interface Instruction {
  readonly bytes: readonly number[];
  readonly imm: Immediate;
}

/** A SIMD instruction: the 0xfd prefix, then its number as LEB128. */
function simd(op: number): number[] {
  return [0xfd, ...uleb(op)];
}

/** The instructions this assembler knows: opcode bytes and immediate kind. */
const INSTRUCTIONS: Record<string, Instruction> = {
  "block": { bytes: [0x02], imm: "block" },
  "loop": { bytes: [0x03], imm: "block" },
  "end": { bytes: [0x0b], imm: "none" },
  "br": { bytes: [0x0c], imm: "label" },
  "br_if": { bytes: [0x0d], imm: "label" },
  "return": { bytes: [0x0f], imm: "none" },
  "drop": { bytes: [0x1a], imm: "none" },
  "local.get": { bytes: [0x20], imm: "local" },
  "local.set": { bytes: [0x21], imm: "local" },
  "local.tee": { bytes: [0x22], imm: "local" },
  "i32.const": { bytes: [0x41], imm: "i32" },
  "i32.eqz": { bytes: [0x45], imm: "none" },
  "i32.eq": { bytes: [0x46], imm: "none" },
  "i32.ne": { bytes: [0x47], imm: "none" },
  "i32.lt_u": { bytes: [0x49], imm: "none" },
  "i32.gt_u": { bytes: [0x4b], imm: "none" },
  "i32.le_u": { bytes: [0x4d], imm: "none" },
  "i32.ge_u": { bytes: [0x4f], imm: "none" },
  "i32.add": { bytes: [0x6a], imm: "none" },
  "i32.sub": { bytes: [0x6b], imm: "none" },
  "i32.mul": { bytes: [0x6c], imm: "none" },
  "i32.and": { bytes: [0x71], imm: "none" },
  "i32.shl": { bytes: [0x74], imm: "none" },
  "i32.shr_u": { bytes: [0x76], imm: "none" },
  "v128.load": { bytes: simd(0x00), imm: "memarg" },
  "v128.store": { bytes: simd(0x0b), imm: "memarg" },
  "v128.const": { bytes: simd(0x0c), imm: "v128" },
  "i8x16.swizzle": { bytes: simd(0x0e), imm: "none" },
  "i8x16.splat": { bytes: simd(0x0f), imm: "none" },
  "v128.and": { bytes: simd(0x4e), imm: "none" },
  "v128.or": { bytes: simd(0x50), imm: "none" },
  "v128.xor": { bytes: simd(0x51), imm: "none" },
  "i8x16.shr_u": { bytes: simd(0x6d), imm: "none" },
  "i16x8.shr_u": { bytes: simd(0x8d), imm: "none" },
  "i8x16.relaxed_swizzle": { bytes: simd(0x100), imm: "none" },
};

const VALUE_TYPES: Record<string, number> = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
};

/** Natural alignment (log2 of bytes) of each memory access. */
const NATURAL_ALIGN: Record<string, number> = {
  "v128.load": 4,
  "v128.store": 4,
};

/** Lanes of each `v128.const` shape: count and byte width. */
const SHAPES: Record<string, [number, number]> = {
  i8x16: [16, 1],
  i16x8: [8, 2],
  i32x4: [4, 4],
};

/**
 * Assembles WebAssembly text (the subset described in the module doc) into
 * module bytes; anything outside it is a `SyntaxError`.
 *
 * @example
 * ```ts
 * import { assembleWat } from "./_wat.ts";
 * const bytes = assembleWat(`(module (func (export "one") (result i32) i32.const 1))`);
 * const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes));
 * console.log((exports.one as () => number)()); // 1
 * ```
 */
export function assembleWat(text: string): Uint8Array<ArrayBuffer> {
  const tree = parse(tokenize(text));
  if (!Array.isArray(tree) || tree[0] !== "module") {
    throw new SyntaxError("Cannot assemble WebAssembly text: no (module ...)");
  }
  const types: number[][] = [];
  const typeKeys: string[] = [];
  const funcTypes: number[] = [];
  const codes: number[][] = [];
  const exports: number[][] = [];
  const memories: number[][] = [];
  for (const field of tree.slice(1)) {
    if (!Array.isArray(field)) fail(`unexpected "${field}" in module`);
    if (field[0] === "memory") {
      const index = memories.length;
      let min: number | undefined;
      for (const item of field.slice(1)) {
        if (Array.isArray(item)) {
          exports.push(exportEntry(item, 0x02, index));
        } else if (!item.startsWith("$")) min = integer(item);
      }
      if (min === undefined) fail("memory without a size");
      memories.push([0x00, ...uleb(min)]);
    } else if (field[0] === "func") {
      const func = assembleFunc(field, funcTypes.length, exports);
      const key = func.type.join(",");
      let typeIndex = typeKeys.indexOf(key);
      if (typeIndex < 0) {
        typeIndex = types.length;
        types.push(func.type);
        typeKeys.push(key);
      }
      funcTypes.push(typeIndex);
      codes.push(func.code);
    } else {
      fail(`unsupported module field "${String(field[0])}"`);
    }
  }
  const bytes = [
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(types)),
    ...section(3, vector(funcTypes.map(uleb))),
    ...(memories.length ? section(5, vector(memories)) : []),
    ...(exports.length ? section(7, vector(exports)) : []),
    ...section(
      10,
      vector(codes.map((code) => [...uleb(code.length), ...code])),
    ),
  ];
  return new Uint8Array(bytes);
}

function assembleFunc(
  field: Sexp[],
  funcIndex: number,
  exports: number[][],
): { type: number[]; code: number[] } {
  const signature = readSignature(field, funcIndex, exports);
  const body = field.slice(signature.at).map((word) =>
    typeof word === "string"
      ? word
      : fail("folded instructions are not supported")
  );
  const code = [...localDeclarations(signature.locals)];
  code.push(...assembleBody(body, signature.names));
  code.push(0x0b);
  const { params, results } = signature;
  const type = [0x60, ...uleb(params.length), ...params];
  type.push(...uleb(results.length), ...results);
  return { type, code };
}

/** A function's exports, parameters, results and locals, up to its body at `at`. */
function readSignature(field: Sexp[], funcIndex: number, exports: number[][]) {
  const params: number[] = [];
  const results: number[] = [];
  const locals: number[] = [];
  const names = new Map<string, number>();
  let at = 1;
  if (typeof field[at] === "string" && (field[at] as string).startsWith("$")) {
    at++;
  }
  for (; at < field.length && Array.isArray(field[at]); at++) {
    const item = field[at] as Sexp[];
    const [kind, ...rest] = item;
    if (kind === "export") {
      exports.push(exportEntry(item, 0x00, funcIndex));
    } else if (kind === "param" || kind === "local" || kind === "result") {
      const list = kind === "result"
        ? results
        : kind === "param"
        ? params
        : locals;
      let name: string | undefined;
      for (const word of rest) {
        if (typeof word !== "string") fail(`bad ${kind}`);
        if (word.startsWith("$")) {
          name = word;
          continue;
        }
        const type = VALUE_TYPES[word] ?? fail(`unknown type "${word}"`);
        if (name !== undefined) names.set(name, params.length + locals.length);
        list.push(type);
        name = undefined;
      }
    } else {
      fail(`unsupported func field "${String(kind)}"`);
    }
  }
  return { params, results, locals, names, at };
}

/** The local declarations: runs of equal types, counted. */
function localDeclarations(locals: number[]): number[] {
  const runs: [number, number][] = [];
  for (const type of locals) {
    const last = runs[runs.length - 1];
    if (last && last[1] === type) last[0]++;
    else runs.push([1, type]);
  }
  const code = [...uleb(runs.length)];
  for (const [count, type] of runs) code.push(...uleb(count), type);
  return code;
}

/** The instructions of a body, with their immediates. */
function assembleBody(body: string[], names: Map<string, number>): number[] {
  const code: number[] = [];
  const labels: (string | undefined)[] = [];
  for (let i = 0; i < body.length; i++) {
    const name = body[i]!;
    const instruction = INSTRUCTIONS[name] ??
      fail(`unknown instruction "${name}"`);
    code.push(...instruction.bytes);
    const next = () => body[++i] ?? fail(`"${name}" needs an operand`);
    const peek = () => body[i + 1];
    code.push(
      ...immediates(instruction.imm, name, { next, peek, labels, names }),
    );
  }
  return code;
}

/** Reads an instruction's operands from the body. */
interface Operands {
  next: () => string;
  peek: () => string | undefined;
  labels: (string | undefined)[];
  names: Map<string, number>;
}

/** The encoded immediates of one instruction. */
function immediates(
  imm: Immediate,
  name: string,
  { next, peek, labels, names }: Operands,
): number[] {
  switch (imm) {
    case "none":
      if (name === "end") labels.pop();
      return [];
    case "block":
      labels.push(peek()?.startsWith("$") ? next() : undefined);
      return [0x40];
    case "label": {
      const label = next();
      const depth = label.startsWith("$")
        ? labels.length - 1 - labels.lastIndexOf(label)
        : integer(label);
      if (depth < 0 || depth >= labels.length) fail(`unknown label "${label}"`);
      return uleb(depth);
    }
    case "local": {
      const local = next();
      return uleb(
        local.startsWith("$")
          ? names.get(local) ?? fail(`unknown local "${local}"`)
          : integer(local),
      );
    }
    case "i32":
      return sleb(integer(next()));
    case "memarg": {
      let align = NATURAL_ALIGN[name] ?? 0;
      let offset = 0;
      while (/^(offset|align)=/.test(peek() ?? "")) {
        const [key, value] = next().split("=") as [string, string];
        if (key === "offset") offset = integer(value);
        else align = Math.log2(integer(value));
      }
      return [...uleb(align), ...uleb(offset)];
    }
    case "v128": {
      const shape = next();
      const [lanes, width] = SHAPES[shape] ?? fail(`bad shape "${shape}"`);
      const bytes: number[] = [];
      for (let lane = 0; lane < lanes; lane++) {
        const value = integer(next());
        for (let b = 0; b < width; b++) bytes.push((value >> (8 * b)) & 0xff);
      }
      return bytes;
    }
  }
  return [];
}

function exportEntry(item: Sexp[], kind: number, index: number): number[] {
  const name = item[1];
  if (item[0] !== "export" || typeof name !== "string" || name[0] !== '"') {
    fail("bad export");
  }
  const utf8 = new TextEncoder().encode(name.slice(1, -1));
  return [...uleb(utf8.length), ...utf8, kind, ...uleb(index)];
}

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const pattern = /\s+|;;[^\n]*|\(;[\s\S]*?;\)|\(|\)|"[^"]*"|[^\s()";]+/y;
  for (let at = 0; at < text.length;) {
    pattern.lastIndex = at;
    const match = pattern.exec(text);
    if (!match) fail(`unexpected "${text.slice(at, at + 10)}"`);
    at = pattern.lastIndex;
    const token = match[0];
    if (
      !/^\s/.test(token) && !token.startsWith(";;") && !token.startsWith("(;")
    ) {
      tokens.push(token);
    }
  }
  return tokens;
}

function parse(tokens: string[]): Sexp {
  const stack: Sexp[][] = [[]];
  for (const token of tokens) {
    if (token === "(") stack.push([]);
    else if (token === ")") {
      const done = stack.pop()!;
      const parent = stack[stack.length - 1] ?? fail("unbalanced )");
      parent.push(done);
    } else (stack[stack.length - 1]!).push(token);
  }
  if (stack.length !== 1 || stack[0]!.length !== 1) fail("unbalanced (");
  return stack[0]![0]!;
}

function integer(word: string): number {
  const value = Number(word.replaceAll("_", ""));
  if (!Number.isSafeInteger(value)) fail(`bad integer "${word}"`);
  return value;
}

function uleb(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = value & 0x7f;
    value >>= 7;
    if ((value === 0 && !(byte & 0x40)) || (value === -1 && (byte & 0x40))) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function vector(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function fail(reason: string): never {
  throw new SyntaxError(`Cannot assemble WebAssembly text: ${reason}`);
}
