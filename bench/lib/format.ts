import type { BenchmarkResult, ResultRow } from './types.ts';

/** Milliseconds with one decimal; sub-0.1 ms figures (in-process benchmarks) with two significant digits. */
function ms(value: number): string {
  return value > 0 && value < 0.1 ? value.toPrecision(2) : value.toFixed(1);
}

/** Microseconds as whole numbers; below 10 µs with two decimals. */
function us(value: number): string {
  return value > 0 && value < 10 ? value.toFixed(2) : value.toFixed(0);
}

const COLUMNS: Array<{ title: string; align: 'left' | 'right'; value: (row: ResultRow) => string }> = [
  { title: 'server', align: 'left', value: (r) => r.name },
  { title: 'round', align: 'right', value: (r) => (r.round === undefined ? 'best' : String(r.round)) },
  { title: 'requests/s', align: 'right', value: (r) => r.requestsPerSec.toFixed(0) },
  { title: 'p50 ms', align: 'right', value: (r) => ms(r.p50Ms) },
  { title: 'p99 ms', align: 'right', value: (r) => ms(r.p99Ms) },
  { title: 'peak RSS MiB', align: 'right', value: (r) => r.peakRssMiB.toFixed(0) },
  { title: 'non-2xx', align: 'right', value: (r) => String(r.non2xx) },
  { title: 'errors', align: 'right', value: (r) => String(r.errors) },
  { title: 'CPU µs/req', align: 'right', value: (r) => us(r.cpuUsPerRequest) },
  { title: 'main µs/req', align: 'right', value: (r) => us(r.mainThreadUsPerRequest) },
  { title: 'Redis CPU %', align: 'right', value: (r) => (r.redisCpuPct === undefined ? '-' : r.redisCpuPct.toFixed(0)) },
  { title: 'other CPU %', align: 'right', value: (r) => r.otherCpuPct.toFixed(0) },
];

/** A plain-text table (also valid Markdown). */
export function table(rows: ResultRow[]): string {
  const cells = rows.map((row) => COLUMNS.map((c) => c.value(row)));
  const widths = COLUMNS.map((c, i) => Math.max(c.title.length, ...cells.map((r) => r[i]!.length)));
  const pad = (text: string, i: number) => (COLUMNS[i]!.align === 'left' ? text.padEnd(widths[i]!) : text.padStart(widths[i]!));
  const line = (values: string[]) => `| ${values.map(pad).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (COLUMNS[i]!.align === 'left' ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(COLUMNS.map((c) => c.title)), rule, ...cells.map(line)].join('\n');
}

export function report(result: BenchmarkResult): string {
  const out = [
    `## ${result.title} (${result.id})`,
    `request: ${result.request}`,
    `reported: ${result.method}`,
    '',
    table([...result.rounds, ...result.rows]),
    '',
  ];
  for (const note of result.notes ?? []) out.push(note);
  for (const check of result.checks) {
    out.push(`${check.name} = ${check.value.toFixed(3)} (target ${check.target}): ${check.pass ? 'PASS' : 'FAIL'}${check.note ? `  [${check.note}]` : ''}`);
  }
  return out.join('\n');
}
