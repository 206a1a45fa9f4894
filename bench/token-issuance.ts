/**
 * Benchmark: client credentials issuance of ES256 JWT access tokens.
 *
 * fedgate (demo realm, Redis store) side by side with a bare oidc-provider
 * (memory adapter, same algorithm, no fedgate code), each in its own child
 * process (a fresh one every round), measured alternately (bare, fedgate,
 * bare, fedgate, ...) with the same load; the best round of each is
 * reported, and their ratio is checked against the target (fedgate at least
 * 0.8 of the bare provider). Every round records the server's CPU time per
 * token (whole process and main thread), Redis's CPU and the CPU other
 * processes took (noise). The round loop is bench/lib/side-by-side.ts.
 */
import type { ServerChild } from './lib/child.ts';
import { clientCredentialsBody, clientCredentialsRequest, type ClientCredentials } from './lib/client-credentials.ts';
import type { LoadRequest } from './lib/load.ts';
import type { BenchOptions } from './lib/options.ts';
import { fedgateSpec, runSideBySide } from './lib/side-by-side.ts';
import type { Benchmark, BenchmarkResult } from './lib/types.ts';
import { AUDIENCE, CLIENT_ID, CLIENT_SECRET, SCOPE } from './servers/token-request.ts';

export const TARGET_RATIO = 0.8;
const CLIENT: ClientCredentials = { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, resource: AUDIENCE, scope: SCOPE };

function decodeJwtPart(part: string | undefined): Record<string, unknown> {
  if (!part) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** One real request first: a benchmark of error responses would be worthless. */
async function verify(server: ServerChild, request: LoadRequest): Promise<void> {
  const response = await fetch(request.url, { method: 'POST', headers: request.headers, body: request.body! });
  const text = await response.text();
  const fail = (why: string): never => {
    throw new Error(`${server.name}: the token request does not produce the expected token (${why}).\nHTTP ${response.status}: ${text.slice(0, 500)}\n--- server output ---\n${server.output().trim()}`);
  };
  if (response.status !== 200) fail('status is not 200');
  let body: { access_token?: string; token_type?: string };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    return fail('body is not JSON');
  }
  const parts = body.access_token?.split('.') ?? [];
  if (parts.length !== 3) fail('access_token is not a JWS');
  let header: Record<string, unknown>;
  let payload: Record<string, unknown>;
  try {
    header = decodeJwtPart(parts[0]);
    payload = decodeJwtPart(parts[1]);
  } catch {
    return fail('access_token does not decode');
  }
  if (header.alg !== 'ES256') fail(`JWT alg is ${String(header.alg)}, not ES256`);
  const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
  if (!aud.includes(AUDIENCE)) fail(`JWT aud is ${JSON.stringify(payload.aud)}`);
  if (payload.scope !== SCOPE) fail(`JWT scope is ${JSON.stringify(payload.scope)}`);
}

function run(options: BenchOptions): Promise<BenchmarkResult> {
  return runSideBySide(options, {
    id: tokenIssuance.id,
    title: tokenIssuance.title,
    request: `POST /token (client_secret_basic ${CLIENT_ID}) ${clientCredentialsBody(CLIENT)}`,
    specs: [
      { kind: 'bare', name: 'bare oidc-provider', module: new URL('./servers/bare-provider.ts', import.meta.url), usesRedis: false },
      fedgateSpec(options),
    ],
    makeRequest: (server) => clientCredentialsRequest(server.url, CLIENT),
    verify,
    targetRatio: TARGET_RATIO,
    unit: 'token',
  });
}

export const tokenIssuance: Benchmark = {
  id: 'token-issuance',
  title: 'Client credentials issuance of ES256 JWT access tokens',
  run,
};
