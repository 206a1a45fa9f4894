import { readFileSync } from 'node:fs';
import { parseMetadata } from './src/federation/saml/metadata.ts';
const m = (l: string) => { const u = process.memoryUsage(); console.log(l, Math.round(u.rss/1e6), Math.round(u.heapTotal/1e6), Math.round(u.heapUsed/1e6), 'maxRSS', Math.round(process.resourceUsage().maxRSS / 1024)); };
const xml = readFileSync('/tmp/agg.xml', 'utf8'); const cert = readFileSync('/tmp/fed.pem','utf8');
m('read');
const r = parseMetadata(xml, process.argv[2] === 'signed' ? { signingCertificate: cert } : {});
m('loaded ' + process.argv[2]);
