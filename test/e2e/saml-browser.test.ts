import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as oidc from 'openid-client';
import { chromium, type Browser as Chromium } from 'playwright-core';
import { samlSchema } from '../../src/config/saml-schema.ts';
import { decodeJwt, freePort, pkceAuthorizationUrl, rp, startServer, type TestServer } from '../support/harness.ts';
import { ATTR, TestIdp } from '../federation/saml/test-idp.ts';

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'];

/**
 * A real browser (Debian's Chromium) signs in through the login page: picks
 * the institution on the discovery page, passes the (test) identity
 * provider, and comes back signed in, with its account and groups mapped
 * from the SAML attributes.
 */
describe('SAML login in a browser', () => {
  let server: TestServer;
  let browser: Chromium;
  let idp: TestIdp;
  let idpServer: Server;
  let callbackServer: Server;
  let callbackUrl: string;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedgate-saml-browser-'));
    const idpPort = await freePort();
    const callbackPort = await freePort();
    callbackUrl = `http://127.0.0.1:${callbackPort}/callback`;
    idp = await TestIdp.create(`http://127.0.0.1:${idpPort}/idp`);
    const metadataFile = join(dir, 'idp-metadata.xml');
    // The display name a discovery page shows comes from mdui (SAML V2.0 Metadata Extensions for Login and Discovery UI).
    const uiInfo = '<Extensions><mdui:UIInfo xmlns:mdui="urn:oasis:names:tc:SAML:metadata:ui"><mdui:DisplayName xml:lang="en">University of Testing</mdui:DisplayName></mdui:UIInfo></Extensions>';
    await writeFile(metadataFile, idp.metadata().replace('<KeyDescriptor use="signing">', `${uiInfo}<KeyDescriptor use="signing">`));
    server = await startServer({
      configure: (config) => {
        config.clients.push({
          clientId: 'browser-portal', clientSecret: 'browser-portal-secret', name: 'Browser test portal', applicationType: 'web',
          grantTypes: ['authorization_code'], redirectUris: [callbackUrl], postLogoutRedirectUris: [], consentRequired: true,
        });
        config.saml = samlSchema.parse({
          enabled: true,
          // The first check also starts the worker threads: on a loaded test machine that can take longer than the 2 s default.
          validation: { deadlineMs: 30_000 },
          metadata: [{ file: metadataFile, trustUnsigned: true }],
          entitlementRules: [{ pattern: '^urn:geant:fedgate\\.demo:group:cms(?::([a-z]+))?#', group: '/cms/$1', assertedBy: { entityIds: [idp.entityID] } }],
        });
      },
    });
    // The identity provider's sign-on page: it checks the AuthnRequest and answers with a signed response in a form.
    const spMetadata = await (await fetch(`${server.issuer}/saml/metadata`)).text();
    idpServer = createServer((req, res) => {
      void (async () => {
        const request = await idp.receive(spMetadata, `http://127.0.0.1:${idpPort}${req.url}`);
        const response = await idp.respond(spMetadata, request, {
          nameId: 'u-4711',
          attributes: {
            [ATTR.subjectId]: ['erin@testing.example'],
            [ATTR.displayName]: ['Erin Example'],
            [ATTR.mail]: ['erin@testing.example'],
            [ATTR.entitlement]: ['urn:geant:fedgate.demo:group:cms:production#idp.testing.example'],
            // eduPersonAssurance (REFEDS RAF), passed through as eduperson_assurance (AARC-G021); the last value is no URI.
            'urn:oid:1.3.6.1.4.1.5923.1.1.1.11': ['https://refeds.org/assurance', 'https://refeds.org/assurance/IAP/medium', 'not a uri'],
          },
        });
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end(`<!doctype html><title>Test IdP</title><form method="post" action="${request.acsUrl}">
<input type="hidden" name="SAMLResponse" value="${response.SAMLResponse}">
<input type="hidden" name="RelayState" value="${response.RelayState}">
<button id="continue" type="submit">Continue to the service</button></form>`);
      })().catch((err: Error) => {
        res.writeHead(400);
        res.end(err.message);
      });
    });
    await new Promise<void>((resolve) => idpServer.listen(idpPort, '127.0.0.1', resolve));
    // Stands in for the portal's redirect URI.
    callbackServer = createServer((_req, res) => res.end('signed in'));
    await new Promise<void>((resolve) => callbackServer.listen(callbackPort, '127.0.0.1', resolve));
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS });
  });
  after(async () => {
    await browser?.close();
    idpServer?.closeAllConnections();
    callbackServer?.closeAllConnections();
    await Promise.all([
      new Promise((r) => idpServer?.close(r)),
      new Promise((r) => callbackServer?.close(r)),
    ]);
    await server?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('picks the institution on the discovery page and comes back signed in', async () => {
    const portal = await rp(server.issuer, 'browser-portal', 'browser-portal-secret');
    const { url, verifier } = await pkceAuthorizationUrl(portal, { redirect_uri: callbackUrl, scope: 'openid profile email groups aarc' });
    // One browser profile for both visits: the choice is remembered in a cookie.
    const context = await browser.newContext();
    context.setDefaultTimeout(10_000);
    const page = await context.newPage();
    await page.goto(url.href);
    await page.getByRole('link', { name: /institution/i }).click();
    await page.getByLabel('Find your institution').fill('testing');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: 'University of Testing' }).click();
    await page.locator('#continue').click();
    // Consent for the portal, then back to its redirect URI.
    await page.getByRole('button', { name: /allow/i }).click();
    await page.waitForURL((u) => u.href.startsWith(callbackUrl));
    const tokens = await oidc.authorizationCodeGrant(portal, new URL(page.url()), { pkceCodeVerifier: verifier });
    const claims = decodeJwt(tokens.id_token!).payload;
    const account = await server.fedgate.accounts.findByIdentity('saml', idp.entityID, 'erin@testing.example');
    assert.ok(account, 'a just-in-time account linked to the SAML identity');
    assert.equal(claims.sub, account.id);
    assert.deepEqual(account.groups, ['/cms/production'], 'eduPersonEntitlement mapped to a group');
    const userinfo = await oidc.fetchUserInfo(portal, tokens.access_token, account.id);
    assert.equal(userinfo.name, 'Erin Example');
    assert.equal(userinfo.email, 'erin@testing.example');
    assert.deepEqual(userinfo.groups, ['/cms', '/cms/production'], 'the token\'s claims carry the mapped groups');
    // AARC-G080 through the `aarc` scope: community identifier (G026), assurance from SAML (G021), G069 entitlements.
    // (scope-released claims go to userinfo: oidc-provider's conformIdTokenClaims)
    assert.equal(userinfo.voperson_id, `${account.id}@fedgate.demo`);
    assert.deepEqual(userinfo.eduperson_assurance, ['https://refeds.org/assurance', 'https://refeds.org/assurance/IAP/medium']);
    assert.deepEqual(userinfo.eduperson_entitlement, ['urn:geant:fedgate.demo:group:cms#fedgate.demo', 'urn:geant:fedgate.demo:group:cms:production#fedgate.demo']);

    // The discovery page remembers the choice.
    const second = await context.newPage();
    const again = await pkceAuthorizationUrl(portal, { redirect_uri: callbackUrl, scope: 'openid', prompt: 'login' });
    await second.goto(again.url.href);
    await second.getByRole('link', { name: /institution/i }).click();
    await second.waitForURL(/\/saml\/discovery/);
    assert.equal(await second.getByRole('heading', { name: 'Last used' }).count(), 1);
    assert.equal(await second.getByRole('link', { name: 'University of Testing' }).count(), 1);

    // An `idp` hint in the authorization request skips the choice: straight to the identity provider.
    const hinted = await context.newPage();
    const withHint = await pkceAuthorizationUrl(portal, { redirect_uri: callbackUrl, scope: 'openid', prompt: 'login', idp: idp.entityID });
    await hinted.goto(withHint.url.href);
    await hinted.locator('#continue').waitFor();
    assert.ok(hinted.url().startsWith(idp.ssoUrl), `at ${hinted.url()}`);
    // AARC-G061's `idp_hint` does the same.
    const g061 = await context.newPage();
    const withG061Hint = await pkceAuthorizationUrl(portal, { redirect_uri: callbackUrl, scope: 'openid', prompt: 'login', idp_hint: idp.entityID });
    await g061.goto(withG061Hint.url.href);
    await g061.locator('#continue').waitFor();
    assert.ok(g061.url().startsWith(idp.ssoUrl), `at ${g061.url()}`);
    await context.close();
  });
});
