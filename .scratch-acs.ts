import { startTestbed } from './test/federation/saml/testbed.ts';
import { TestIdp, ATTR } from './test/federation/saml/test-idp.ts';
import { tempFile, spMetadata } from './test/federation/saml/flows.ts';
const idp = await TestIdp.create('https://idp.bench.example.org/idp/shibboleth');
const tb = await startTestbed({ saml: { metadata: [{ file: await tempFile('i.xml', idp.metadata()), trustUnsigned: true }] } });
const sp = await spMetadata(tb);
const bodies: Record<string,string>[] = [];
for (let i = 0; i < 600; i++) {
  const b = tb.browser();
  const r = await b.get(`/saml/login?idp=${encodeURIComponent(idp.entityID)}&interaction=x${i}`);
  const req = await idp.receive(sp, r.location!);
  bodies.push(await idp.respond(sp, req, { attributes: { [ATTR.subjectId]: [`u${i}@bench.example.org`] } }) as any);
}
tb.logs.lines.length = 0;
const { Session } = await import('node:inspector/promises');
const s = new Session(); s.connect(); await s.post('Profiler.enable'); await s.post('Profiler.start');
const t = performance.now(); const c = process.cpuUsage();
let ok = 0;
for (const body of bodies) { const a = await tb.browser().post('/saml/acs', body); if (a.status === 303) ok++; }
const el = performance.now() - t; const cpu = process.cpuUsage(c);
const { profile } = await s.post('Profiler.stop');
(await import('node:fs')).writeFileSync('/tmp/acs.cpuprofile', JSON.stringify(profile));
console.log(ok, (bodies.length / (el / 1000)).toFixed(0), '/s', ((cpu.user + cpu.system) / bodies.length).toFixed(0), 'us cpu each');
await tb.close();
