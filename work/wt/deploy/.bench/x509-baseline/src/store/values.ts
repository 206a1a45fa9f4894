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
