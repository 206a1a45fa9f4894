import { readFileSync } from 'node:fs';
import { SignedXml } from 'xml-crypto';
import { parseXml } from './src/federation/saml/xml.ts';
import { parseMetadata } from './src/federation/saml/metadata.ts';
const xml = readFileSync('/tmp/agg.xml', 'utf8'); const cert = readFileSync('/tmp/fed.pem','utf8');
const cases: Record<string,string> = {
  valid: xml,
  crlf: xml.replace(/\n/g, '\r\n'),
  tamperedText: xml.replace('University of Bologna 1<', 'University of Evil 1<'),
  tamperedAttr: xml.replace('https://idp.example.org/1/sso"', 'https://evil.example.org/1/sso"'),
  commentAdded: xml.replace('University of Bologna 1<', 'University of <!-- x -->Bologna 1<'),
  topComment: xml.replace('</md:EntitiesDescriptor>', '<!-- hi --></md:EntitiesDescriptor>'),
  whitespace: xml.replace('</md:EntitiesDescriptor>', ' </md:EntitiesDescriptor>'),
  sigValue: xml.replace(/<ds:SignatureValue>(.)/, (m, c) => `<ds:SignatureValue>${c === 'A' ? 'B' : 'A'}`),
  dupId: xml.replace('entityID="https://idp7.inst7', (m) => `ID="${/ ID="([^"]+)"/.exec(xml)![1]}" ${m}`),
  extraEntity: xml.replace('</md:EntitiesDescriptor>', '<md:EntityDescriptor entityID="https://evil"/></md:EntitiesDescriptor>'),
};
for (const [name, doc] of Object.entries(cases)) {
  let ours = 'ok'; const t = performance.now();
  try { parseMetadata(doc, { signingCertificate: cert }); } catch (e) { ours = (e as any).code + ' ' + (e as any).message; }
  const ms = performance.now() - t;
  let theirs = 'ok'; try { const d = parseXml(doc.replace(/\r\n/g, '\n')); const s = new SignedXml({ publicCert: cert }); s.loadSignature(d.documentElement.getElementsByTagNameNS('http://www.w3.org/2000/09/xmlsig#','Signature')[0] ?? d.documentElement.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#','Signature')[0]!); theirs = s.checkSignature(doc) ? 'ok' : 'bad'; } catch (e) { theirs = 'bad ' + (e as Error).message.slice(0, 60); }
  console.log(name, '|', ours, '|', theirs, ms.toFixed(0));
}
