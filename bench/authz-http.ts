/**
 * Benchmark: `/authz` decisions over HTTP, requests per second.
 *
 * fedgate (demo realm, Redis store) answering nginx `auth_request` checks
 * for the orchestrator service, side by side with a bare Koa handler that
 * answers the same request 200 without deciding anything
 * (bench/servers/bare-koa.ts): the ratio is what fedgate's decision costs
 * on top of Koa and node:http (target: fedgate at least 0.5 of bare Koa).
 * Rounds, CPU accounting and the report are bench/lib/side-by-side.ts.
 *
 * fedgate's token is a real one, issued by the same process before the load
 * (client credentials of demo-service); every request carries the same
 * token, as a busy client would, so after the first request fedgate answers
 * from its verified-token cache: this measures the hot path.
 */
import type { ServerChild } from './lib/child.ts';
import { clientCredentialsRequest, type ClientCredentials } from './lib/client-credentials.ts';
import type { LoadRequest } from './lib/load.ts';
import type { BenchOptions } from './lib/options.ts';
import { fedgateSpec, runSideBySide, type ServerSpec } from './lib/side-by-side.ts';
import type { Benchmark, BenchmarkResult } from './lib/types.ts';

export const TARGET_RATIO = 0.5;

/** The demo policy (policies/policy.csv) lets client:demo-service read /deployments/** in the orchestrator domain with compute.read. */
const CLIENT: ClientCredentials = {
  clientId: 'demo-service',
  clientSecret: 'demo-service-secret',
  resource: 'https://orchestrator.demo',
  scope: 'compute.read',
};
const SERVICE = 'orchestrator';
const ORIGINAL_METHOD = 'GET';
const ORIGINAL_URI = '/deployments/42';

/**
 * The bare server checks no token, but gets one shaped like the demo's ES256
 * access tokens (540 characters), so both servers parse as much header.
 */
const PLACEHOLDER_TOKEN = `${'e'.repeat(110)}.${'p'.repeat(342)}.${'s'.repeat(86)}`;

function authzRequest(server: ServerChild, token: string): LoadRequest {
  return {
    url: `${server.url}/authz?service=${SERVICE}`,
    method: 'GET',
    headers: { authorization: `Bearer ${token}`, 'x-original-method': ORIGINAL_METHOD, 'x-original-uri': ORIGINAL_URI },
  };
}

/** An access token from fedgate itself (POST /token), before the load. */
async function issueToken(server: ServerChild): Promise<string> {
  const request = clientCredentialsRequest(server.url, CLIENT);
  const response = await fetch(request.url, { method: 'POST', headers: request.headers, body: request.body! });
  const text = await response.text();
  let token: unknown;
  try {
    token = (JSON.parse(text) as { access_token?: unknown }).access_token;
  } catch {
    // reported below
  }
  if (response.status !== 200 || typeof token !== 'string') {
    throw new Error(`${server.name}: no access token for ${CLIENT.clientId} (${CLIENT.scope} for ${CLIENT.resource}).\nHTTP ${response.status}: ${text.slice(0, 500)}\n--- server output ---\n${server.output().trim()}`);
  }
  return token;
}

/** The same token with one character of its signature changed: well-formed, but forged. */
function tamper(token: string): string {
  const dot = token.lastIndexOf('.');
  // A character in the middle of the signature: the last one may only carry padding bits.
  const i = dot + 1 + Math.floor((token.length - dot - 1) / 2);
  return `${token.slice(0, i)}${token[i] === 'A' ? 'B' : 'A'}${token.slice(i + 1)}`;
}

async function call(request: LoadRequest): Promise<{ status: number; headers: Headers; text: string }> {
  const response = await fetch(request.url, { method: request.method, headers: request.headers });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

function describe(answer: { status: number; headers: Headers; text: string }): string {
  const headers = [...answer.headers].map(([name, value]) => `${name}: ${value}`).join('\n');
  return `HTTP ${answer.status}\n${headers}\n\n${answer.text.slice(0, 500)}`;
}

/**
 * Before any load: the request must get the real answer (200 and, from
 * fedgate, the client's identity header), and for fedgate the same request
 * with a forged token must be refused, so the benchmark never measures a
 * server that allows everything.
 */
async function verify(server: ServerChild, request: LoadRequest, spec: ServerSpec): Promise<void> {
  const fail = (why: string, answer: { status: number; headers: Headers; text: string }): never => {
    throw new Error(`${server.name}: ${why}.\n${describe(answer)}\n--- server output ---\n${server.output().trim()}`);
  };
  const answer = await call(request);
  if (answer.status !== 200) fail('the allowed /authz request does not answer 200', answer);
  if (spec.kind !== 'fedgate') {
    if (answer.headers.get('x-original-uri') !== ORIGINAL_URI) fail('the bare handler does not echo X-Original-URI', answer);
    return;
  }
  if (answer.headers.get('x-fedgate-client') !== CLIENT.clientId) fail(`the allowed /authz request does not answer X-Fedgate-Client: ${CLIENT.clientId}`, answer);
  const token = request.headers.authorization!.slice('Bearer '.length);
  const forged = await call({ ...request, headers: { ...request.headers, authorization: `Bearer ${tamper(token)}` } });
  if (forged.status !== 401) fail('/authz with a forged token does not answer 401', forged);
}

function run(options: BenchOptions): Promise<BenchmarkResult> {
  return runSideBySide(options, {
    id: authzHttp.id,
    title: authzHttp.title,
    request: `GET /authz?service=${SERVICE} with Authorization: Bearer <ES256 JWT: client credentials of ${CLIENT.clientId}, ${CLIENT.scope} for ${CLIENT.resource}>, X-Original-Method: ${ORIGINAL_METHOD}, X-Original-URI: ${ORIGINAL_URI} (nginx auth_request; the same token every request, so fedgate's verified-token cache answers after the first; bare Koa gets a placeholder token of similar length)`,
    specs: [
      { kind: 'bare', name: 'bare Koa', module: new URL('./servers/bare-koa.ts', import.meta.url), usesRedis: false },
      fedgateSpec(options),
    ],
    makeRequest: async (server, spec) => authzRequest(server, spec.kind === 'fedgate' ? await issueToken(server) : PLACEHOLDER_TOKEN),
    verify,
    targetRatio: TARGET_RATIO,
    unit: 'request',
  });
}

export const authzHttp: Benchmark = {
  id: 'authz-http',
  title: '/authz decisions over HTTP (nginx auth_request)',
  run,
};
