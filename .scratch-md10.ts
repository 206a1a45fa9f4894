import { readFileSync } from 'node:fs';
import { scanTopLevel } from './src/federation/saml/metadata.ts';
const m = (l: string) => { const u = process.memoryUsage(); console.log(l, Math.round(u.rss/1e6), Math.round(u.heapTotal/1e6), Math.round(u.heapUsed/1e6), 'maxRSS', Math.round(process.resourceUsage().maxRSS / 1024)); };
const xml = readFileSync('/tmp/agg.xml', 'utf8');
m('read');
const t = performance.now();
const top = (scanTopLevel as any)(xml);
m('scanned ' + top.children.length + ' ' + (performance.now() - t).toFixed(0));
