import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { testKeyPair, certificateBody, syntheticIdps, aggregateXml, signMetadata } from './test/fixtures/saml/metadata-builder.ts';
if (!existsSync('/tmp/agg.xml')) {
  const fed = await testKeyPair('fed');
  const certs = await Promise.all([1,2,3,4].map((i) => testKeyPair('idp'+i)));
  writeFileSync('/tmp/agg.xml', signMetadata(aggregateXml(syntheticIdps(5000, certs.map(c => certificateBody(c.certificatePem))), { validUntil: new Date(Date.now()+864e5), cacheDuration: 'PT6H' }), fed));
  writeFileSync('/tmp/fed.pem', fed.certificatePem);
  process.exit(0);
}
const { parseXml } = await import('./src/federation/saml/xml.ts');
const { verifyDocumentSignature, parseMetadata } = await import('./src/federation/saml/metadata.ts');
const xml = readFileSync('/tmp/agg.xml', 'utf8'); const cert = readFileSync('/tmp/fed.pem','utf8');
const mode = process.argv[2];
let t = performance.now();
const lap = (l: string) => { const n = performance.now(); console.log(l, (n - t).toFixed(0), 'ms rss', (process.memoryUsage().rss/1e6).toFixed(0)); t = n; };
if (mode === 'parts') {
  const doc = parseXml(xml); lap('parse');
  verifyDocumentSignature(xml, doc, cert); lap('verify');
  parseMetadata(xml); lap('parseMetadata unsigned');
} else {
  parseMetadata(xml, { signingCertificate: cert }); lap('all');
}
console.log('maxRSS', (process.resourceUsage().maxRSS/1024).toFixed(0));
