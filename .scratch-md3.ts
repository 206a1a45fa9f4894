import { readFileSync } from 'node:fs';
const { parseMetadata } = await import('./src/federation/saml/metadata.ts');
const xml = readFileSync('/tmp/agg.xml', 'utf8'); const cert = readFileSync('/tmp/fed.pem','utf8');
parseMetadata(xml, { signingCertificate: cert });
