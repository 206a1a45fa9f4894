import { readFileSync } from 'node:fs';
import { parseXml } from './src/federation/saml/xml.ts';
const m = (l: string) => { const u = process.memoryUsage(); console.log(l, Math.round(u.rss/1e6), Math.round(u.heapTotal/1e6), Math.round(u.heapUsed/1e6), 'maxRSS', Math.round(process.resourceUsage().maxRSS / 1024)); };
const xml = readFileSync('/tmp/agg.xml', 'utf8');
m('read');
const start = xml.indexOf('<md:EntitiesDescriptor'); const st = xml.slice(start, xml.indexOf('>', start) + 1);
let i = xml.indexOf('<md:EntityDescriptor'); let n = 0;
const mode = process.argv[2];
const keep: unknown[] = [];
while (i >= 0) {
  const j = xml.indexOf('</md:EntityDescriptor>', i) + 22;
  const frag = xml.slice(i, j);
  if (mode !== 'slice') {
    const d = parseXml(`${st}${frag}</md:EntitiesDescriptor>`);
    if (mode === 'keep') keep.push(d.documentElement.firstChild!.textContent);
  }
  n++; i = xml.indexOf('<md:EntityDescriptor', j);
}
m('done ' + mode + ' ' + n);
