/**
 * Two V8 .cpuprofile files side by side: self time per token by function
 * (or by area: package, Node.js internals, fedgate's folders, GC), the
 * largest differences first. Made for the profiles `paired-cpu.ts
 * --profile DIR` writes, where both servers ran over the same seconds.
 *
 *   node bench/tools/cpuprofile-diff.ts A.cpuprofile TOKENS_A B.cpuprofile TOKENS_B [top=40] [area]
 *
 * TOKENS_*: the requests each server answered over the profile's life (a
 * paired run's rate × (warm-up + measured seconds)); the profile covers the
 * process's start as well, so module loading shows up as a difference too.
 */
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function areaOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : `(native) ${functionName}`;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return `pkg:${rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, 3).join('/')}`;
  const src = url.indexOf('/src/');
  if (src !== -1) return `fedgate:${url.slice(src + 5).split('/')[0]}`;
  return url;
}

function functionOf(url: string, functionName: string, line: number): string {
  const short = url.replace(/.*\/node_modules\//, '').replace(/^file:\/\/.*?\/(src|bench)\//, '$1/');
  return `${functionName || '(anonymous)'} ${short}:${line}`;
}

/** Non-idle self time per token (µs), by key. */
async function selfPerToken(file: string, tokens: number, byArea: boolean): Promise<Map<string, number>> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const keyOf = new Map<number, string>();
  for (const { id, callFrame: cf } of profile.nodes) keyOf.set(id, byArea ? areaOf(cf.url, cf.functionName) : functionOf(cf.url, cf.functionName, cf.lineNumber));
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const key = keyOf.get(id)!;
    if (key.startsWith('(idle)')) return;
    totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  for (const [key, micros] of totals) totals.set(key, micros / tokens);
  return totals;
}

const [fileA, tokensA, fileB, tokensB, topRaw, mode] = process.argv.slice(2);
if (!fileA || !fileB || !(Number(tokensA) > 0) || !(Number(tokensB) > 0)) {
  console.error('usage: cpuprofile-diff.ts A.cpuprofile TOKENS_A B.cpuprofile TOKENS_B [top=40] [area]');
  process.exit(2);
}
const byArea = mode === 'area' || topRaw === 'area';
const top = Number(topRaw) > 0 ? Number(topRaw) : 40;
const a = await selfPerToken(fileA, Number(tokensA), byArea);
const b = await selfPerToken(fileB, Number(tokensB), byArea);
const sum = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0);
console.log(`non-idle self time per token: A ${sum(a).toFixed(1)} µs, B ${sum(b).toFixed(1)} µs (whole process life)`);
console.log('   B−A        A        B  (µs per token)');
const rows = [...new Set([...a.keys(), ...b.keys()])].map((key) => ({ key, a: a.get(key) ?? 0, b: b.get(key) ?? 0 }));
rows.sort((x, y) => Math.abs(y.b - y.a) - Math.abs(x.b - x.a));
for (const row of rows.slice(0, top)) {
  console.log(`${(row.b - row.a).toFixed(2).padStart(7)} ${row.a.toFixed(2).padStart(8)} ${row.b.toFixed(2).padStart(8)}  ${row.key}`);
}
