/**
 * Summarises a V8 .cpuprofile (from `BENCH_PROFILE=1 npm run bench`, or any
 * `node --cpu-prof` run): the top functions by self time, and self time
 * grouped by where the code lives (fedgate's src/, each package in
 * node_modules, Node.js internals, GC, idle).
 *
 *   node bench/tools/cpuprofile-top.ts .bench/profiles/fedgate-token-issuance.cpuprofile [top=30] [filter]
 *
 * With a filter (a substring of the area or location, e.g. `fedgate src` or
 * `oidc-provider`), only matching functions are listed in the top table.
 */
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function area(url: string, functionName: string): string {
  if (!url) {
    if (functionName === '(garbage collector)') return '(gc)';
    if (functionName === '(idle)' || functionName === '(program)' || functionName === '(root)') return functionName;
    return '(native)';
  }
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return `pkg:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) return 'node internals';
  const src = url.indexOf('/src/');
  if (src !== -1) return 'fedgate src';
  if (url.includes('/bench/')) return 'bench';
  return url;
}

function shortUrl(url: string): string {
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) return url.slice(nm + '/node_modules/'.length);
  const src = url.lastIndexOf('/src/');
  if (src !== -1) return url.slice(src + 1);
  return url.replace(/^file:\/\//, '');
}

async function main(): Promise<void> {
  const [file, topArg, filter] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node bench/tools/cpuprofile-top.ts <file.cpuprofile> [top=30] [filter]\n');
    process.exit(2);
  }
  const top = Number(topArg ?? 30);
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfMicros = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = profile.timeDeltas.reduce((a, b) => a + b, 0);
  const idle = [...selfMicros].filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)').reduce((a, [, t]) => a + t, 0);
  const busy = total - idle;

  const byFunction = new Map<string, { micros: number; area: string }>();
  const byArea = new Map<string, number>();
  for (const [id, micros] of selfMicros) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = area(url, functionName);
    const key = `${functionName || '(anonymous)'}  ${url ? `${shortUrl(url)}:${lineNumber + 1}` : ''}`;
    const entry = byFunction.get(key) ?? { micros: 0, area: where };
    entry.micros += micros;
    byFunction.set(key, entry);
    byArea.set(where, (byArea.get(where) ?? 0) + micros);
  }
  const pct = (micros: number) => `${((micros / busy) * 100).toFixed(1).padStart(5)}%`;
  const ms = (micros: number) => `${(micros / 1000).toFixed(0).padStart(7)} ms`;
  process.stdout.write(`profile: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s not idle (percentages are of non-idle time)\n\n`);
  process.stdout.write('self time by area:\n');
  for (const [name, micros] of [...byArea].filter(([n]) => n !== '(idle)').sort((a, b) => b[1] - a[1])) {
    process.stdout.write(`${ms(micros)} ${pct(micros)}  ${name}\n`);
  }
  process.stdout.write(`\ntop ${top} functions by self time${filter ? ` (matching ${JSON.stringify(filter)})` : ''}:\n`);
  const rows = [...byFunction]
    .filter(([key, e]) => e.area !== '(idle)' && (!filter || `${e.area} ${key}`.includes(filter)))
    .sort((a, b) => b[1].micros - a[1].micros)
    .slice(0, top);
  for (const [key, e] of rows) process.stdout.write(`${ms(e.micros)} ${pct(e.micros)}  ${key}\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
