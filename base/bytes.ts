/**
 * Byte counts as people write and read them: `500k`, `20M`, `1.5 GiB`.
 * Binary units throughout (k = 1024), as curl's and rsync's options read
 * them; `M`, `MB` and `MiB` all mean 2^20.
 *
 * @module
 */

const MULTIPLIERS: Record<string, number> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
  t: 1024 ** 4,
};

/**
 * Parses a byte count such as `500k`, `20M` or `1g` (binary units); a
 * malformed or zero count is a `SyntaxError`.
 */
export function parseBytes(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b?)?$/i.exec(text.trim());
  const bytes = match
    ? Number(match[1]) * MULTIPLIERS[match[2]!.toLowerCase()]!
    : NaN;
  if (!(bytes >= 1) || !Number.isSafeInteger(Math.floor(bytes))) {
    throw new SyntaxError(
      `Cannot parse "${text}": use a number of bytes like 500k, 20M or 1G`,
    );
  }
  return Math.floor(bytes);
}

const UNIT_NAMES = ["B", "KiB", "MiB", "GiB", "TiB"];

/** `1.5 GiB`, `512 B`: binary units, one decimal; whole bytes below a KiB. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNIT_NAMES.length - 1) {
    value /= 1024;
    unit++;
  }
  // Rates are fractional: show `512 B/s`, not `512.4342105263158 B/s`.
  return unit === 0
    ? `${Math.round(bytes)} B`
    : `${value.toFixed(1)} ${UNIT_NAMES[unit]}`;
}
