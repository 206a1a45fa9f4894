import { testKeyPair, certificateBody, syntheticIdps, aggregateXml, signMetadata } from './test/fixtures/saml/metadata-builder.ts';
import { parseMetadata } from './src/federation/saml/metadata.ts';
const fed = await testKeyPair('fed');
const certs = await Promise.all([1,2,3,4].map((i) => testKeyPair('idp'+i)));
const t0 = performance.now();
const xml = signMetadata(aggregateXml(syntheticIdps(5000, certs.map(c => certificateBody(c.certificatePem))), { validUntil: new Date(Date.now()+864e5), cacheDuration: 'PT6H' }), fed);
const t1 = performance.now();
console.log('size MB', (xml.length/1e6).toFixed(1), 'sign ms', (t1-t0).toFixed(0));
const rss0 = process.memoryUsage().rss;
const p = parseMetadata(xml, { signingCertificate: fed.certificatePem });
const t2 = performance.now();
console.log('parse+verify ms', (t2-t1).toFixed(0), 'idps', p.idps.length, 'rss MB', (process.memoryUsage().rss/1e6).toFixed(0), 'maxRSS MB', (process.resourceUsage().maxRSS/1024).toFixed(0), p.idps[3]);
try { parseMetadata(xml.replace('University of Bologna 1<', 'University of Evil 1<'), { signingCertificate: fed.certificatePem }); } catch (e) { console.log('tampered:', e.code, e.message); }
