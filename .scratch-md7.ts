import { readFileSync } from 'node:fs';
import { DOMParser } from '@xmldom/xmldom';
const m = (l: string) => { const u = process.memoryUsage(); console.log(l, Math.round(u.rss/1e6), Math.round(u.heapTotal/1e6), Math.round(u.heapUsed/1e6), 'maxRSS', Math.round(process.resourceUsage().maxRSS / 1024)); };
m('start');
const xml = readFileSync('/tmp/agg.xml', 'utf8');
m('read');
// parse 5000 fragments of ~2KB each and drop
const frag = xml.slice(xml.indexOf('<md:EntityDescriptor'), xml.indexOf('</md:EntityDescriptor>') + 22);
const wrap = xml.slice(xml.indexOf('<md:EntitiesDescriptor'), xml.indexOf('>', xml.indexOf('<md:EntitiesDescriptor')) + 1);
let n = 0;
for (let i = 0; i < 5000; i++) {
  const d = new DOMParser(process.argv[2] === 'loc' ? { locator: {}, errorHandler: { warning() {}, error() {}, fatalError() {} } } : { errorHandler: { warning() {}, error() {}, fatalError() {} } }).parseFromString(wrap + frag + '</md:EntitiesDescriptor>', 'text/xml');
  n += d.documentElement.childNodes.length;
}
m('parsed');
