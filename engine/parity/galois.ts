/**
 * Arithmetic in GF(2^8), the field Reed-Solomon parity is computed in: 256
 * byte values where addition is XOR and multiplication is polynomial
 * multiplication modulo x^8 + x^4 + x^3 + x^2 + 1 (0x11d, generator 2), the
 * field of Backblaze's, klauspost's and reed-solomon-erasure's codes.
 *
 * Scalar operations go through log and exp tables; {@linkcode nibbleTables}
 * builds the two 16-entry tables per factor that the SIMD kernel looks bytes
 * up in.
 *
 * @module
 */

/** The field's reducing polynomial, x^8 + x^4 + x^3 + x^2 + 1. */
export const FIELD_POLYNOMIAL = 0x11d;

/** `EXP[i]` = 2^i; 510 entries so that `EXP[LOG[a] + LOG[b]]` needs no modulo. */
const EXP = new Uint8Array(510);
/** `LOG[a]` = i such that 2^i = a, for a != 0. */
const LOG = new Uint8Array(256);

{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    EXP[i + 255] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= FIELD_POLYNOMIAL;
  }
}

/**
 * The product of two field elements.
 *
 * @example
 * ```ts
 * import { gfMul } from "./galois.ts";
 * console.log(gfMul(3, 7)); // 9
 * ```
 */
export function gfMul(a: number, b: number): number {
  if (a === 0 || b === 0) return 0;
  return EXP[LOG[a]! + LOG[b]!]!;
}

/**
 * `a` divided by `b`; dividing by zero is a `RangeError`.
 *
 * @example
 * ```ts
 * import { gfDiv, gfMul } from "./galois.ts";
 * console.log(gfMul(gfDiv(9, 7), 7)); // 9
 * ```
 */
export function gfDiv(a: number, b: number): number {
  if (b === 0) throw new RangeError("Cannot divide in GF(2^8): divisor is 0");
  if (a === 0) return 0;
  return EXP[LOG[a]! + 255 - LOG[b]!]!;
}

/**
 * `a` raised to the integer power `n` >= 0 (0^0 = 1).
 *
 * @example
 * ```ts
 * import { gfPow } from "./galois.ts";
 * console.log(gfPow(2, 8)); // 29, as 2^8 is reduced by 0x11d
 * ```
 */
export function gfPow(a: number, n: number): number {
  if (n === 0) return 1;
  if (a === 0) return 0;
  return EXP[(LOG[a]! * n) % 255]!;
}

/**
 * The 256 products `factor * x`: a lookup table for multiplying bytes by a
 * constant one at a time.
 *
 * @example
 * ```ts
 * import { mulTable } from "./galois.ts";
 * console.log(mulTable(2)[128]); // 29
 * ```
 */
export function mulTable(factor: number): Uint8Array {
  const table = new Uint8Array(256);
  for (let x = 1; x < 256; x++) table[x] = gfMul(factor, x);
  return table;
}

/**
 * Writes the 32 bytes that multiply by `factor` sixteen bytes at a time at
 * `out[at..at+32]`: `factor * x` for x = 0..15, then for x = 0x00..0xf0 in
 * steps of 0x10. Multiplication is linear over XOR, so
 * `factor * b = low[b & 15] ^ high[b >> 4]`, two 16-entry lookups that one
 * SIMD swizzle each can do for a whole vector.
 *
 * @example
 * ```ts
 * import { gfMul, nibbleTables } from "./galois.ts";
 * const t = nibbleTables(7, new Uint8Array(32));
 * console.log((t[0xa5 & 15]! ^ t[16 + (0xa5 >> 4)]!) === gfMul(7, 0xa5)); // true
 * ```
 */
export function nibbleTables(
  factor: number,
  out: Uint8Array,
  at = 0,
): Uint8Array {
  for (let x = 0; x < 16; x++) {
    out[at + x] = gfMul(factor, x);
    out[at + 16 + x] = gfMul(factor, x << 4);
  }
  return out;
}
