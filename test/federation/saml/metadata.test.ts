/**
 * Identity providers from metadata: signed aggregates (signed at test time
 * with xml-crypto by a generated federation key) verified before anything
 * in them is used; refreshes that fail keep the last good copy and raise an
 * alert; validUntil and cacheDuration drive the schedule; allow/deny lists;
 * a URL source on a loopback HTTP server.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { SignedXml } from 'xml-crypto';
import { ConfigError } from '../../../src/config/index.ts';
import { type MetadataError, parseMetadata } from '../../../src/federation/saml/metadata.ts';
import { ALERTS, IdpRegistry } from '../../../src/federation/saml/registry.ts';
import { parseXml } from '../../../src/federation/saml/xml.ts';
import { createLogger } from '../../../src/observability/logger.ts';
import {
  aggregateXml, certificateBody, idpEntityXml, RSA_SHA1, signMetadata, spEntityXml, syntheticIdps, testKeyPair, type TestKeyPair,
} from '../../fixtures/saml/metadata-builder.ts';
import { LogCapture } from '../../support/harness.ts';
import { tempFile } from './flows.ts';
import { startTestbed } from './testbed.ts';

const DAY = 86_400_000;

describe('SAML metadata', () => {
  let federation: TestKeyPair;
  let impostor: TestKeyPair;
  let idpCerts: string[];
  let federationCertFile: string;
  let idpCertKeys: TestKeyPair[] = [];

  /** A signed aggregate of `n` synthetic IdPs (plus extras), valid for a day unless told otherwise. */
  const aggregate = (n: number, extras: string[] = [], options: Parameters<typeof aggregateXml>[1] = {}) =>
    signMetadata(aggregateXml([...syntheticIdps(n, idpCerts), ...extras], { validUntil: new Date(Date.now() + DAY), ...options }), federation);

  before(async () => {
    [federation, impostor, ...idpCertKeys] = await Promise.all([testKeyPair('federation signer'), testKeyPair('impostor'), testKeyPair('idp a'), testKeyPair('idp b')]);
    idpCerts = idpCertKeys.map((k) => certificateBody(k.certificatePem));
    federationCertFile = await tempFile('federation.pem', federation.certificatePem);
  });

  describe('parsing and verification', () => {
    it('accepts a signed aggregate of many entities and keeps only identity providers', () => {
      const xml = aggregate(200, [spEntityXml('https://sp.example.org/shibboleth', idpCerts[0]!)], { cacheDuration: 'PT6H' });
      const parsed = parseMetadata(xml, { signingCertificate: federation.certificatePem });
      assert.equal(parsed.entities, 201);
      assert.equal(parsed.idps.length, 200);
      assert.equal(parsed.cacheDurationSeconds, 6 * 3600);
      assert.ok(parsed.verified);
      const idp = parsed.idps.find((i) => i.entityID === 'https://idp7.inst7.example.org/idp/shibboleth')!;
      assert.equal(idp.displayName, 'University of Heidelberg 7');
      assert.equal(idp.ssoUrl, 'https://idp.example.org/7/sso');
      assert.deepEqual(idp.scopes, [{ value: 'inst7.example.org', regexp: false }]);
      assert.match(idp.signingCertificates[0]!, /^-----BEGIN CERTIFICATE-----\n/);
    });

    it('refuses a tampered aggregate, one signed by another key, and one not signed at all', () => {
      const xml = aggregate(20);
      const code = (fn: () => unknown) => {
        try {
          fn();
          return 'accepted';
        } catch (err) {
          return (err as MetadataError).code;
        }
      };
      assert.equal(code(() => parseMetadata(xml.replace('University of Bologna 1<', 'University of Evil 1<'), { signingCertificate: federation.certificatePem })), 'signature_invalid');
      assert.equal(code(() => parseMetadata(xml.replace('https://idp.example.org/3/sso"', 'https://evil.example.org/sso"'), { signingCertificate: federation.certificatePem })), 'signature_invalid');
      assert.equal(code(() => parseMetadata(xml.replace('</md:EntitiesDescriptor>', `${idpEntityXml({ entityID: 'https://evil.example/idp', certificates: [idpCerts[0]!], ssoUrl: 'https://evil.example/sso' })}</md:EntitiesDescriptor>`), { signingCertificate: federation.certificatePem })), 'signature_invalid');
      assert.equal(code(() => parseMetadata(xml, { signingCertificate: impostor.certificatePem })), 'signature_invalid');
      assert.equal(code(() => parseMetadata(aggregateXml(syntheticIdps(3, idpCerts)), { signingCertificate: federation.certificatePem })), 'unsigned');
      assert.equal(code(() => parseMetadata(signMetadata(aggregateXml(syntheticIdps(3, idpCerts)), federation, RSA_SHA1), { signingCertificate: federation.certificatePem })), 'weak_algorithm');
      assert.equal(code(() => parseMetadata(`<!DOCTYPE x [<!ENTITY a "b">]>${xml}`, { signingCertificate: federation.certificatePem })), 'malformed');
      assert.equal(code(() => parseMetadata(xml.slice(0, -200), { signingCertificate: federation.certificatePem })), 'malformed');
    });

    it('refuses a signature over only part of the document (metadata signature wrapping)', () => {
      // A genuinely signed entity, wrapped into an aggregate whose root the signature does not cover.
      const entity = signMetadata(idpEntityXml({ entityID: 'https://idp.ok.example/idp', certificates: [idpCerts[0]!], ssoUrl: 'https://idp.ok.example/sso' }).replace('<md:EntityDescriptor ', '<md:EntityDescriptor ID="_e1" '), federation);
      const wrapped = aggregateXml([entity.replace(/^<\?xml[^>]*>/, ''), idpEntityXml({ entityID: 'https://evil.example/idp', certificates: [idpCerts[1]!], ssoUrl: 'https://evil.example/sso' })]);
      assert.throws(() => parseMetadata(wrapped, { signingCertificate: federation.certificatePem }), (err: MetadataError) => err.code === 'unsigned');
      // The signature moved up to the aggregate still references the inner entity only.
      const signature = /<ds:Signature[\s\S]*<\/ds:Signature>/.exec(entity)![0];
      const moved = wrapped.replace(signature, '').replace(/(<md:EntitiesDescriptor[^>]*>)/, `$1${signature}`);
      assert.throws(() => parseMetadata(moved, { signingCertificate: federation.certificatePem }), (err: MetadataError) => err.code === 'signature_invalid');
    });

    it('agrees with xml-crypto SignedXml.checkSignature on valid and altered aggregates', () => {
      const xml = aggregate(30);
      const variants = {
        valid: xml,
        crlf: xml.replace(/\n/g, '\r\n'),
        commentInText: xml.replace('University of Bologna 1<', 'University of <!-- c -->Bologna 1<'),
        commentAtTop: xml.replace('</md:EntitiesDescriptor>', '<!-- top --></md:EntitiesDescriptor>'),
        extraSpace: xml.replace('</md:EntitiesDescriptor>', ' </md:EntitiesDescriptor>'),
        textChanged: xml.replace('Graz', 'Gratz'),
        attributeReordered: xml.replace(/Binding="([^"]+)" Location="([^"]+)"/, 'Location="$2" Binding="$1"'),
        duplicateId: xml.replace('entityID="https://idp7.', `ID="${/ ID="([^"]+)"/.exec(xml)![1]}" entityID="https://idp7.`),
        signatureValue: xml.replace(/<ds:SignatureValue>(.)/, (_m, c: string) => `<ds:SignatureValue>${c === 'A' ? 'B' : 'A'}`),
      };
      for (const [name, variant] of Object.entries(variants)) {
        let ours = true;
        try {
          parseMetadata(variant, { signingCertificate: federation.certificatePem });
        } catch {
          ours = false;
        }
        let theirs = false;
        try {
          const doc = parseXml(variant.replace(/\r\n/g, '\n'));
          const verifier = new SignedXml({ publicCert: federation.certificatePem });
          verifier.loadSignature(doc.getElementsByTagNameNS('http://www.w3.org/2000/09/xmldsig#', 'Signature')[0]!);
          theirs = verifier.checkSignature(variant);
        } catch {
          theirs = false;
        }
        assert.equal(ours, theirs, `${name}: fedgate ${ours ? 'accepts' : 'refuses'}, xml-crypto ${theirs ? 'accepts' : 'refuses'}`);
      }
      assert.ok(true);
    });

    it('picks display names: mdui (English first), else OrganizationDisplayName, else the entityID; hides hide-from-discovery', () => {
      const xml = aggregateXml([
        idpEntityXml({ entityID: 'https://a.example/idp', displayNames: { de: 'Universität A', en: 'University A' }, certificates: [idpCerts[0]!], ssoUrl: 'https://a.example/sso' }),
        idpEntityXml({ entityID: 'https://b.example/idp', organizationNames: { fr: 'Université B' }, certificates: [idpCerts[0]!], ssoUrl: 'https://b.example/sso' }),
        idpEntityXml({ entityID: 'https://c.example/idp', certificates: [idpCerts[0]!], ssoUrl: 'https://c.example/sso', hideFromDiscovery: true }),
        idpEntityXml({ entityID: 'https://old.example/idp', certificates: [idpCerts[0]!], ssoUrl: 'https://old.example/sso', validUntil: new Date(Date.now() - 1000) }),
        idpEntityXml({ entityID: 'https://nokey.example/idp', certificates: [], ssoUrl: 'https://nokey.example/sso' }),
      ]);
      const { idps } = parseMetadata(xml);
      assert.deepEqual(idps.map((i) => [i.entityID, i.displayName, i.hidden]), [
        ['https://a.example/idp', 'University A', false],
        ['https://b.example/idp', 'Université B', false],
        ['https://c.example/idp', 'https://c.example/idp', true],
      ]);
    });

    it('refuses metadata whose validUntil has passed', () => {
      const xml = signMetadata(aggregateXml(syntheticIdps(2, idpCerts), { validUntil: new Date(Date.now() - 60_000) }), federation);
      assert.throws(() => parseMetadata(xml, { signingCertificate: federation.certificatePem }), (err: MetadataError) => err.code === 'expired');
    });
  });

  describe('sources, refresh and alerts', () => {
    const registryFor = (file: string, logs: LogCapture, extra: Partial<ConstructorParameters<typeof IdpRegistry>[0]> = {}) => new IdpRegistry({
      sources: [{ file, name: 'federation', signingCertificate: federationCertFile, trustUnsigned: false, refreshSeconds: { default: 3600, min: 1, max: 3600 } }],
      logger: createLogger('debug', logs),
      ...extra,
    });
    const alerts = (logs: LogCapture) => logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.alert);

    it('keeps the last good copy when a refresh is badly signed, and raises an alert', async () => {
      const file = await tempFile('fed.xml', aggregate(50));
      const logs = new LogCapture();
      const registry = registryFor(file, logs);
      try {
        assert.deepEqual((await registry.start()).map((s) => s.ok), [true]);
        assert.equal(registry.size, 50);
        await writeFile(file, aggregate(60).replace('University of Bologna 1<', 'University of Evil 1<'));
        const [status] = await registry.refreshAll();
        assert.equal(status!.ok, false);
        assert.equal(status!.reason, 'signature_invalid');
        assert.equal(registry.size, 50, 'the last good copy stays');
        const alert = alerts(logs).at(-1)!;
        assert.equal(alert.alert, ALERTS.rejected);
        assert.equal(alert.reason, 'signature_invalid');
        assert.equal(alert.keptLastGood, true);
        assert.equal(alert.level, 'error');
        // A good refresh replaces it.
        await writeFile(file, aggregate(60));
        assert.equal((await registry.refreshAll())[0]!.ok, true);
        assert.equal(registry.size, 60);
      } finally {
        registry.close();
      }
    });

    it('refuses an expired refresh, then drops the last good copy once it expires too', async () => {
      let now = Date.now();
      const file = await tempFile('fed.xml', aggregate(5, [], { validUntil: new Date(now + 60_000) }));
      const logs = new LogCapture();
      const registry = registryFor(file, logs, { now: () => now });
      try {
        await registry.start();
        assert.equal(registry.size, 5);
        await writeFile(file, aggregate(5, [], { validUntil: new Date(now - 1000) }));
        assert.equal((await registry.refreshAll())[0]!.reason, 'expired');
        assert.equal(registry.size, 5);
        assert.ok(registry.get('https://idp1.inst1.example.org/idp/shibboleth'));
        now += 120_000; // the good copy's validUntil has passed
        assert.equal(registry.get('https://idp1.inst1.example.org/idp/shibboleth'), undefined, 'expired entities are no longer trusted');
        await registry.refreshAll();
        assert.equal(registry.size, 0);
        assert.ok(alerts(logs).some((a) => a.alert === ALERTS.stale));
      } finally {
        registry.close();
      }
    });

    it('applies the allow and deny lists', async () => {
      const file = await tempFile('fed.xml', aggregate(10));
      const logs = new LogCapture();
      const allow = ['https://idp1.inst1.example.org/idp/shibboleth', 'https://idp2.inst2.example.org/idp/shibboleth', 'https://idp3.inst3.example.org/idp/shibboleth'];
      const registry = registryFor(file, logs, { allow, deny: ['https://idp2.inst2.example.org/idp/shibboleth'] });
      try {
        await registry.start();
        assert.deepEqual(registry.providers().map((i) => i.entityID).sort(), [allow[0], allow[2]]);
        assert.equal(registry.get(allow[1]!), undefined);
        assert.equal(registry.get('https://idp4.inst4.example.org/idp/shibboleth'), undefined);
      } finally {
        registry.close();
      }
    });

    it('searches display names without regard to case and accents', async () => {
      const file = await tempFile('fed.xml', aggregate(100));
      const registry = registryFor(file, new LogCapture());
      try {
        await registry.start();
        const hits = registry.search('munchen univ', 5);
        assert.ok(hits.length > 0);
        assert.ok(hits.every((h) => /München/.test(h.displayName) && /University/.test(h.displayName)), hits.map((h) => h.displayName).join());
        assert.equal(registry.search('inst42.example', 5)[0]?.entityID, 'https://idp42.inst42.example.org/idp/shibboleth');
        assert.equal(registry.search('zzz-nothing', 5).length, 0);
        // Prefix matches of the display name first.
        assert.match(registry.search('college', 3)[0]!.displayName, /^College/);
      } finally {
        registry.close();
      }
    });

    it('fetches a URL source and refreshes it on its cacheDuration, with conditional requests', async () => {
      let body = aggregate(3, [], { cacheDuration: 'PT1S' });
      let etag = '"v1"';
      const requests: Array<string | undefined> = [];
      const server: Server = createServer((req, res) => {
        requests.push(req.headers['if-none-match']);
        if (req.headers['if-none-match'] === etag) {
          res.writeHead(304).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/samlmetadata+xml', etag }).end(body);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metadata.xml`;
      const closeServer = async () => {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      };
      const tb = await startTestbed({
        saml: { metadata: [{ url, signingCertificate: federationCertFile, refreshSeconds: { default: 30, min: 1, max: 60 } }] },
      }).catch(async (err: unknown) => {
        await closeServer();
        throw err;
      });
      try {
        assert.equal(tb.bridge.providers().length, 3);
        await sleep(1300);
        assert.ok(requests.length >= 2, `${requests.length} requests`);
        assert.equal(requests[1], '"v1"', 'refreshes are conditional');
        body = aggregate(4, [], { cacheDuration: 'PT1S' });
        etag = '"v2"';
        for (let i = 0; i < 30 && tb.bridge.providers().length !== 4; i += 1) await sleep(100);
        assert.equal(tb.bridge.providers().length, 4);
        // The federation's server starts serving a broken copy: alert, last good copy kept.
        body = aggregate(9, [], { cacheDuration: 'PT1S' }).replace('Bologna', 'Bolonia');
        etag = '"v3"';
        for (let i = 0; i < 30 && !tb.logLines().some((l) => l.alert === ALERTS.rejected); i += 1) await sleep(100);
        assert.equal(tb.bridge.providers().length, 4);
        const alert = tb.logLines().find((l) => l.alert === ALERTS.rejected)!;
        assert.equal(alert.reason, 'signature_invalid');
        assert.equal(alert.source, url);
      } finally {
        await tb.close();
        await closeServer();
      }
    });
  });

  describe('start-up', () => {
    it('logs an alert for a bad source and starts with the good ones', async () => {
      const good = await tempFile('good.xml', aggregate(4));
      const bad = await tempFile('bad.xml', aggregate(4).replace('Bologna', 'Bolonia'));
      const tb = await startTestbed({ saml: { metadata: [{ file: bad, signingCertificate: federationCertFile }, { file: good, signingCertificate: federationCertFile }] } });
      try {
        assert.equal(tb.bridge.providers().length, 4);
        const alert = tb.logLines().find((l) => l.alert === ALERTS.rejected)!;
        assert.equal(alert.source, bad);
        assert.equal(alert.keptLastGood, false);
      } finally {
        await tb.close();
      }
    });

    it('throws a ConfigError when SAML is enabled and no source can be loaded', async () => {
      const bad = await tempFile('bad.xml', aggregate(4).replace('Bologna', 'Bolonia'));
      const tb = await startTestbed({ noStart: true, saml: { metadata: [{ file: bad, signingCertificate: federationCertFile }, { file: '/nonexistent/metadata.xml', trustUnsigned: true }] } });
      try {
        await assert.rejects(tb.bridge.start(), (err: ConfigError) => err instanceof ConfigError && err.problems.length === 2 && /signature_invalid/.test(err.problems[0]!) && /unreachable/.test(err.problems[1]!));
      } finally {
        await tb.close();
      }
    });
  });

  it('reads each identity provider\'s registration authority (MDRPI), its own or its aggregate\'s', () => {
    const rpi = (authority: string) => `<md:Extensions><mdrpi:RegistrationInfo xmlns:mdrpi="urn:oasis:names:tc:SAML:metadata:rpi" registrationAuthority="${authority}"/></md:Extensions>`;
    const own = idpEntityXml({ entityID: 'https://idp.own.example/idp', certificates: [idpCerts[0]!], ssoUrl: 'https://idp.own.example/sso' })
      .replace(/(<md:EntityDescriptor[^>]*>)/, `$1${rpi('https://own-federation.example/')}`);
    const inherited = idpEntityXml({ entityID: 'https://idp.inherited.example/idp', certificates: [idpCerts[0]!], ssoUrl: 'https://idp.inherited.example/sso' });
    const xml = aggregateXml([own, inherited]).replace(/(<md:EntitiesDescriptor[^>]*>)/, `$1${rpi('https://aggregate-federation.example/')}`);
    const parsed = parseMetadata(xml);
    assert.deepEqual(parsed.idps.map((i) => [i.entityID, i.registrationAuthority]), [
      ['https://idp.own.example/idp', 'https://own-federation.example/'],
      ['https://idp.inherited.example/idp', 'https://aggregate-federation.example/'],
    ]);
    assert.equal(parseMetadata(inherited).idps[0]!.registrationAuthority, undefined);
  });
});
