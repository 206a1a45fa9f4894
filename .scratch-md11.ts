import { readFileSync } from 'node:fs';
import { parseXml, children, child, NS, text, certificateToPem } from './src/federation/saml/xml.ts';
import { normalizeForSearch } from './src/federation/saml/metadata.ts';
const m = (l: string) => { const u = process.memoryUsage(); console.log(l, Math.round(u.rss/1e6), Math.round(u.heapTotal/1e6), Math.round(u.heapUsed/1e6), 'maxRSS', Math.round(process.resourceUsage().maxRSS / 1024)); };
const xml = readFileSync('/tmp/agg.xml', 'utf8');
const start = xml.indexOf('<md:EntitiesDescriptor'); const st = xml.slice(start, xml.indexOf('>', start) + 1);
let i = xml.indexOf('<md:EntityDescriptor');
const mode = process.argv[2];
const keep: unknown[] = [];
while (i >= 0) {
  const j = xml.indexOf('</md:EntityDescriptor>', i) + 22;
  const el = parseXml(`${st}${xml.slice(i, j)}</md:EntitiesDescriptor>`).documentElement.firstChild as Element;
  const d = children(el, NS.metadata, 'IDPSSODescriptor')[0]!;
  if (mode === 'cert') { const k = children(d, NS.metadata, 'KeyDescriptor')[0]!; const c = child(child(child(k, NS.dsig, 'KeyInfo')!, NS.dsig, 'X509Data')!, NS.dsig, 'X509Certificate')!; keep.push(certificateToPem(text(c))); }
  if (mode === 'certtext') { const k = children(d, NS.metadata, 'KeyDescriptor')[0]!; const c = child(child(child(k, NS.dsig, 'KeyInfo')!, NS.dsig, 'X509Data')!, NS.dsig, 'X509Certificate')!; keep.push(text(c)); }
  if (mode === 'norm') keep.push(normalizeForSearch(el.getAttribute('entityID')! + ' University of Bologna'));
  if (mode === 'attr') keep.push(el.getAttribute('entityID'));
  if (mode === 'buf') keep.push(Buffer.from(el.getAttribute('entityID')!).toString());
  if (mode === 'json') keep.push(JSON.parse(JSON.stringify(el.getAttribute('entityID'))));
  i = xml.indexOf('<md:EntityDescriptor', j);
}
m('done ' + mode);
