/**
 * The browser's side of a SAML login against the test bed: start at
 * /saml/login, let the test IdP read the AuthnRequest, post its response to
 * the ACS, follow the 303 to /saml/complete.
 */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Answer, Browser, Testbed } from './testbed.ts';
import type { ReceivedRequest, RespondOptions, TestIdp } from './test-idp.ts';

/** Writes `xml` to a new temporary file; returns its path. */
export async function tempFile(name: string, xml: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'fedgate-saml-md-'));
  const path = join(dir, name);
  await writeFile(path, xml);
  return path;
}

/** The SP metadata the test bed serves. */
export async function spMetadata(tb: Testbed): Promise<string> {
  const answer = await tb.browser().get('/saml/metadata');
  assert.equal(answer.status, 200);
  return answer.text;
}

/** GET /saml/login for `purpose`; the IdP reads the request it redirects to. */
export async function startLogin(tb: Testbed, browser: Browser, idp: TestIdp, purpose: { interaction: string } | { link: true }): Promise<ReceivedRequest> {
  const params = new URLSearchParams({ idp: idp.entityID, ...('interaction' in purpose ? { interaction: purpose.interaction } : { link: '1' }) });
  const answer = await browser.get(`/saml/login?${params}`);
  assert.equal(answer.status, 303, answer.text);
  return idp.receive(await spMetadata(tb), answer.location!);
}

/** Posts a response to the ACS. */
export function postToAcs(browser: Browser, body: { SAMLResponse: string; RelayState?: string }): Promise<Answer> {
  return browser.post('/saml/acs', body.RelayState === undefined ? { SAMLResponse: body.SAMLResponse } : { SAMLResponse: body.SAMLResponse, RelayState: body.RelayState });
}

/** A whole login: start, respond with `options`, ACS, complete. Returns the ACS and complete answers. */
export async function login(tb: Testbed, browser: Browser, idp: TestIdp, purpose: { interaction: string } | { link: true }, options: RespondOptions = {}): Promise<{ acs: Answer; complete: Answer | undefined; request: ReceivedRequest }> {
  const request = await startLogin(tb, browser, idp, purpose);
  const acs = await postToAcs(browser, await idp.respond(await spMetadata(tb), request, options));
  if (acs.status !== 303) return { acs, complete: undefined, request };
  assert.match(acs.location!, /^\/saml\/complete\?state=[A-Za-z0-9_-]{43}$/);
  return { acs, complete: await browser.get(acs.location!), request };
}
