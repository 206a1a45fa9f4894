/**
 * A Map that holds at most `limit` entries: setting a new key when it is
 * full drops the oldest one first (Maps iterate in insertion order). The
 * per-replica caches and memos on hot paths use it, so that no input can
 * make them grow without end. A limit of 0 or less keeps nothing.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  readonly limit: number;

  constructor(limit: number) {
    super();
    this.limit = limit;
  }

  override set(key: K, value: V): this {
    if (this.limit <= 0) return this;
    if (!this.has(key)) while (this.size >= this.limit) this.delete(this.keys().next().value!);
    return super.set(key, value);
  }
}
