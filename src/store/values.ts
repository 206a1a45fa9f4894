/** Serialises a stored value; both store implementations keep JSON text. */
export function encode(value: unknown): string {
  const encoded = JSON.stringify(value);
  if (encoded === undefined) throw new TypeError('value is not JSON-serialisable');
  return encoded;
}

/** TTLs, lengths and counts are positive whole numbers (TypeError-class misuse, not bad input). */
export function assertPositiveInteger(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
}

/** A point in time in whole seconds since the epoch (what `consume` records). */
export function assertTimestamp(value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`a timestamp must be a non-negative integer, got ${value}`);
  }
}

/** A stream id (`<ms>-<seq>`), or a time in milliseconds (`<ms>`) standing for all ids of that millisecond. */
export function assertStreamId(value: string, name: string): void {
  if (!/^\d{1,16}(?:-\d{1,20})?$/.test(value)) throw new RangeError(`${name} must be a stream id such as 1700000000000-0, got ${value}`);
}

/**
 * Orders strings by their UTF-8 bytes, as Redis orders the members of a
 * sorted set with equal scores (JavaScript's `<` compares UTF-16 code units,
 * which puts U+E000..U+FFFF after the surrogate pairs of U+10000 and above).
 */
export function compareUtf8(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i += 1) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    // Surrogates (D800-DFFF) encode code points above FFFF: move them above E000-FFFF.
    if (x >= 0xd800) x = x < 0xe000 ? x + 0x2000 : x - 0x800;
    if (y >= 0xd800) y = y < 0xe000 ? y + 0x2000 : y - 0x800;
    return x - y;
  }
  return a.length - b.length;
}

/**
 * Orders two stream ids (`<ms>-<seq>`, or `<ms>` read as the first (`min`)
 * or last (`max`) id of that millisecond).
 */
export function compareStreamIds(a: string, b: string, bare: 'min' | 'max'): number {
  const split = (id: string): [bigint, bigint] => {
    const [ms, seq] = id.split('-');
    return [BigInt(ms!), seq === undefined ? (bare === 'min' ? 0n : 2n ** 64n) : BigInt(seq)];
  };
  const [am, as] = split(a);
  const [bm, bs] = split(b);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}
