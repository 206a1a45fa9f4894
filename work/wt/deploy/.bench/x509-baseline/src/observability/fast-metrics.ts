import type { Registry } from 'prom-client';

/**
 * Counters and histograms for the request hot path, exported through
 * prom-client's registry at scrape time.
 *
 * Written by hand because prom-client validates and hashes the label set on
 * every inc()/observe(), even through labels() children: at thousands of
 * tokens per second that was a measurable share of the token endpoint's time
 * (bench/, docs/performance.md). Here a caller resolves its label values to a
 * child once and then only bumps numbers.
 */
interface Exported {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
  aggregator: 'sum';
}

abstract class FastMetric<Child> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: 'counter' | 'histogram';
  readonly #labelNames: readonly string[];
  protected readonly children = new Map<string, { labels: Record<string, string>; child: Child }>();

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[]) {
    this.name = name;
    this.help = help;
    this.#labelNames = labelNames;
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  protected abstract create(): Child;

  /** The child for these label values (in labelNames order), created on first use. */
  labels(...values: string[]): Child {
    const key = values.join('\u0000');
    let entry = this.children.get(key);
    if (!entry) {
      const labels = Object.fromEntries(this.#labelNames.map((n, i) => [n, values[i] ?? '']));
      entry = { labels, child: this.create() };
      this.children.set(key, entry);
    }
    return entry.child;
  }

  abstract get(): Promise<Exported>;

  reset(): void {
    this.children.clear();
  }
}

export class FastCounter extends FastMetric<{ value: number }> {
  readonly type = 'counter' as const;

  protected create() {
    return { value: 0 };
  }

  async get(): Promise<Exported> {
    return {
      name: this.name, help: this.help, type: 'counter', aggregator: 'sum',
      values: [...this.children.values()].map(({ labels, child }) => ({ labels, value: child.value })),
    };
  }
}

export interface HistogramChild {
  observe(value: number): void;
}

export class FastHistogram extends FastMetric<HistogramChild & { counts: number[]; sum: number; count: number }> {
  readonly type = 'histogram' as const;
  readonly #buckets: readonly number[];

  constructor(registry: Registry, name: string, help: string, labelNames: readonly string[], buckets: readonly number[]) {
    super(registry, name, help, labelNames);
    this.#buckets = [...buckets].sort((a, b) => a - b);
  }

  protected create() {
    const buckets = this.#buckets;
    const child = {
      counts: new Array<number>(buckets.length).fill(0),
      sum: 0,
      count: 0,
      observe(value: number) {
        child.sum += value;
        child.count += 1;
        for (let i = 0; i < buckets.length; i += 1) {
          if (value <= buckets[i]!) {
            child.counts[i]! += 1;
            return;
          }
        }
      },
    };
    return child;
  }

  async get(): Promise<Exported> {
    const values: Exported['values'] = [];
    for (const { labels, child } of this.children.values()) {
      let cumulative = 0;
      this.#buckets.forEach((le, i) => {
        cumulative += child.counts[i]!;
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: child.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: child.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: child.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values };
  }
}
