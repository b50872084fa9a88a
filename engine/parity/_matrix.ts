/**
 * Small matrices over GF(2^8), row-major in a flat `Uint8Array`: the
 * systematic encoding matrix and the inverses that decoding needs.
 *
 * @module
 */

import { gfDiv, gfMul, gfPow } from "./galois.ts";

/** The product of `a` (`rows` x `inner`) and `b` (`inner` x `cols`). */
export function multiply(
  a: Uint8Array,
  b: Uint8Array,
  rows: number,
  inner: number,
  cols: number,
): Uint8Array {
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < inner; i++) {
      const factor = a[r * inner + i]!;
      if (factor === 0) continue;
      for (let c = 0; c < cols; c++) {
        out[r * cols + c]! ^= gfMul(factor, b[i * cols + c]!);
      }
    }
  }
  return out;
}

/**
 * The inverse of the `n` x `n` matrix `m`, by Gauss-Jordan elimination; a
 * singular matrix is a `RangeError` (the encoding matrix never yields one).
 */
export function invert(m: Uint8Array, n: number): Uint8Array {
  const work = m.slice();
  const inverse = new Uint8Array(n * n);
  for (let i = 0; i < n; i++) inverse[i * n + i] = 1;
  for (let col = 0; col < n; col++) {
    let pivot = col;
    while (pivot < n && work[pivot * n + col] === 0) pivot++;
    if (pivot === n) {
      throw new RangeError("Cannot invert matrix: it is singular");
    }
    if (pivot !== col) {
      swapRows(work, n, pivot, col);
      swapRows(inverse, n, pivot, col);
    }
    const scale = gfDiv(1, work[col * n + col]!);
    scaleRow(work, n, col, scale);
    scaleRow(inverse, n, col, scale);
    for (let row = 0; row < n; row++) {
      const factor = work[row * n + col]!;
      if (row === col || factor === 0) continue;
      for (let c = 0; c < n; c++) {
        work[row * n + c]! ^= gfMul(factor, work[col * n + c]!);
        inverse[row * n + c]! ^= gfMul(factor, inverse[col * n + c]!);
      }
    }
  }
  return inverse;
}

/**
 * The systematic `(k + m)` x `k` encoding matrix: the Vandermonde matrix
 * `V[r][c] = r^c` times the inverse of its top `k` rows, so the top is the
 * identity (data shards stay as they are) and any `k` rows stay invertible
 * (any `k` rows of `V` are a Vandermonde matrix on distinct points, and
 * multiplying by an invertible matrix keeps that). This is the matrix of
 * Backblaze's JavaReedSolomon, klauspost/reedsolomon and
 * reed-solomon-erasure, so parity matches theirs byte for byte.
 */
export function encodingMatrix(k: number, m: number): Uint8Array {
  const n = k + m;
  const vandermonde = new Uint8Array(n * k);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) vandermonde[r * k + c] = gfPow(r, c);
  }
  const top = invert(vandermonde.subarray(0, k * k), k);
  return multiply(vandermonde, top, n, k, k);
}

function swapRows(m: Uint8Array, n: number, a: number, b: number): void {
  for (let c = 0; c < n; c++) {
    const t = m[a * n + c]!;
    m[a * n + c] = m[b * n + c]!;
    m[b * n + c] = t;
  }
}

function scaleRow(m: Uint8Array, n: number, row: number, factor: number) {
  for (let c = 0; c < n; c++) m[row * n + c] = gfMul(factor, m[row * n + c]!);
}
