/**
 * Benchmark: token exchanges (RFC 8693) per second, side by side with
 * client credentials tokens from the same fedgate (target: exchanges at
 * least 0.7 of client credentials).
 *
 * Both sides are fedgate with the demo realm and the Redis store, on a fixed
 * port whose URL is the issuer (the exchange side first signs alice in at
 * the portal through the login and consent pages). The exchange is the
 * first hop of the demo chain: demo-portal exchanges alice's ES256 JWT
 * access token, with its own client credentials token as actor_token, for
 * an orchestrator token (delegation, nested `act`). Each one verifies two
 * JWTs, reads the user's grants and account, decides the exchange and scope
 * policies, writes a grant, its record and the recorded token, and signs.
 * The baseline is demo-orchestrator's client credentials request for the
 * orchestrator: one client authentication, one signature, no store write.
 */
import { Browser, freePort, loginThroughPages } from '../test/support/harness.ts';
import type { ServerChild } from './lib/child.ts';
import { clientCredentialsRequest, type ClientCredentials } from './lib/client-credentials.ts';
import type { LoadRequest } from './lib/load.ts';
import type { BenchOptions } from './lib/options.ts';
import { fedgateSpec, runSideBySide, type ServerSpec } from './lib/side-by-side.ts';
import type { Benchmark, BenchmarkResult } from './lib/types.ts';

export const TARGET_RATIO = 0.7;

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
const REDIRECT = 'http://localhost:3000/callback';
const ORCHESTRATOR = 'https://orchestrator.demo';
const USER_SCOPE = 'openid compute.create storage.read:/store/cms';

const BASELINE: ClientCredentials = { clientId: 'demo-orchestrator', clientSecret: 'demo-orchestrator-secret', resource: ORCHESTRATOR, scope: 'compute.read' };
const PORTAL: ClientCredentials = { clientId: 'demo-portal', clientSecret: 'demo-portal-secret', resource: ORCHESTRATOR, scope: 'compute.read' };

const basic = (c: ClientCredentials) => `Basic ${Buffer.from(`${encodeURIComponent(c.clientId)}:${encodeURIComponent(c.clientSecret)}`).toString('base64')}`;

async function tokenRequest(server: ServerChild, client: ClientCredentials, form: Record<string, string>): Promise<Record<string, string>> {
  const response = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { authorization: basic(client), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${server.name}: ${form.grant_type} answered HTTP ${response.status}: ${text.slice(0, 500)}\n--- server output ---\n${server.output().trim()}`);
  return JSON.parse(text) as Record<string, string>;
}

/** alice's access token at the portal (code flow through fedgate's pages), and the portal's own token as actor. */
async function exchangeRequest(server: ServerChild): Promise<LoadRequest> {
  const authorization = new URL(`${server.url}/auth`);
  for (const [k, v] of Object.entries({ client_id: PORTAL.clientId, response_type: 'code', redirect_uri: REDIRECT, scope: USER_SCOPE, resource: ORCHESTRATOR })) {
    authorization.searchParams.set(k, v);
  }
  const callback = await loginThroughPages(new Browser(), authorization, REDIRECT, { username: 'alice', password: 'alice-password' });
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`${server.name}: no authorization code in ${callback.href}`);
  const user = await tokenRequest(server, PORTAL, { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, resource: ORCHESTRATOR });
  const actor = await tokenRequest(server, PORTAL, { grant_type: 'client_credentials', resource: PORTAL.resource, scope: PORTAL.scope });
  return {
    url: `${server.url}/token`,
    method: 'POST',
    headers: { authorization: basic(PORTAL), 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: GRANT, subject_token: user.access_token!, subject_token_type: ACCESS_TOKEN,
      actor_token: actor.access_token!, actor_token_type: ACCESS_TOKEN, audience: ORCHESTRATOR,
    }).toString(),
  };
}

/** Before any load: the request gets a real token; for the exchange, one carrying `act` for alice. */
async function verify(server: ServerChild, request: LoadRequest, spec: ServerSpec): Promise<void> {
  const response = await fetch(request.url, { method: request.method, headers: request.headers, body: request.body! });
  const text = await response.text();
  const fail = (why: string): never => { throw new Error(`${server.name}: ${why}.\nHTTP ${response.status}: ${text.slice(0, 500)}\n--- server output ---\n${server.output().trim()}`); };
  if (response.status !== 200) fail('the token request does not answer 200');
  const token = (JSON.parse(text) as { access_token?: string }).access_token;
  if (!token) fail('no access_token');
  const payload = JSON.parse(Buffer.from(token!.split('.')[1]!, 'base64url').toString('utf8')) as { act?: { sub?: string }; aud?: string };
  if (payload.aud !== ORCHESTRATOR) fail(`the token is not for ${ORCHESTRATOR}`);
  if (spec.kind === 'exchange' && payload.act?.sub !== PORTAL.clientId) fail('the exchanged token does not carry act.sub = demo-portal');
}

async function run(options: BenchOptions): Promise<BenchmarkResult> {
  const port = await freePort();
  const base = fedgateSpec(options);
  const env = { ...base.env, BENCH_PORT: String(port), BENCH_ISSUER: `http://127.0.0.1:${port}` };
  return runSideBySide(options, {
    id: tokenExchange.id,
    title: tokenExchange.title,
    request: `POST /token grant_type=${GRANT} by demo-portal: subject_token = alice's ES256 JWT access token (${USER_SCOPE} for ${ORCHESTRATOR}), actor_token = demo-portal's client credentials token, audience ${ORCHESTRATOR}; baseline: POST /token grant_type=client_credentials by ${BASELINE.clientId} (${BASELINE.scope} for ${BASELINE.resource}); both fedgate with Redis`,
    specs: [
      { ...base, kind: 'client-credentials', name: 'fedgate client credentials', env },
      { ...base, kind: 'exchange', name: 'fedgate token exchange', env },
    ],
    makeRequest: (server, spec) => (spec.kind === 'exchange' ? exchangeRequest(server) : clientCredentialsRequest(server.url, BASELINE)),
    verify,
    targetRatio: TARGET_RATIO,
    unit: 'token',
  });
}

export const tokenExchange: Benchmark = {
  id: 'token-exchange',
  title: 'Token exchange (RFC 8693) vs client credentials, tokens per second',
  run,
};
