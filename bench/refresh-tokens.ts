/**
 * Benchmark: refresh token grants per second, with the refresh token
 * consumed in one atomic store step (Store.consume, a Lua script on Redis),
 * side by side with the same fedgate consuming it as it did before: read the
 * token, then write it back marked (bench/servers/fedgate.ts,
 * BENCH_CONSUME=read-then-write). Target: the atomic step costs at most
 * 10 % of the rate.
 *
 * Both sides are fedgate with the demo realm and the Redis store. Before the
 * load, demo-portal signs alice in through the login and consent pages once
 * per refresh token chain (`openid offline_access`); every request of the
 * load then refreshes one chain with the token the last answer of that
 * chain gave (rotation), so each refresh token is used exactly once: one
 * client authentication, a store read of the token and its grant, the
 * consumption, a new refresh token and opaque access token written, an ID
 * token signed.
 */
import { Browser, freePort, loginThroughPages } from '../test/support/harness.ts';
import type { ServerChild } from './lib/child.ts';
import type { LoadRequest } from './lib/load.ts';
import type { BenchOptions } from './lib/options.ts';
import { fedgateSpec, runSideBySide } from './lib/side-by-side.ts';
import type { Benchmark, BenchmarkResult } from './lib/types.ts';

export const TARGET_RATIO = 0.9;

const REDIRECT = 'http://localhost:3000/callback';
const SCOPE = 'openid offline_access';
const CLIENT_ID = 'demo-portal';
const BASIC = `Basic ${Buffer.from(`${CLIENT_ID}:demo-portal-secret`).toString('base64')}`;
const HEADERS = { authorization: BASIC, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };

/** One refresh token chain: signs alice in at the portal and redeems the code. */
async function firstRefreshToken(server: ServerChild, browser: Browser): Promise<string> {
  const authorization = new URL(`${server.url}/auth`);
  for (const [k, v] of Object.entries({ client_id: CLIENT_ID, response_type: 'code', redirect_uri: REDIRECT, scope: SCOPE, prompt: 'consent' })) {
    authorization.searchParams.set(k, v);
  }
  const callback = await loginThroughPages(browser, authorization, REDIRECT, { username: 'alice', password: 'alice-password' });
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`${server.name}: no authorization code in ${callback.href}`);
  const response = await fetch(`${server.url}/token`, {
    method: 'POST', headers: HEADERS, body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT }),
  });
  const text = await response.text();
  const token = response.status === 200 ? (JSON.parse(text) as { refresh_token?: string }).refresh_token : undefined;
  if (!token) throw new Error(`${server.name}: the code did not give a refresh token: HTTP ${response.status} ${text.slice(0, 300)}\n--- server output ---\n${server.output().trim()}`);
  return token;
}

/**
 * The load: each request takes a refresh token nobody holds and puts the
 * rotated one back when its answer comes. With more chains than
 * connections a request never waits for a token.
 */
async function refreshRequest(server: ServerChild, chains: number): Promise<LoadRequest> {
  const browser = new Browser();
  const pool: string[] = [];
  for (let i = 0; i < chains; i++) pool.push(await firstRefreshToken(server, browser));
  return {
    url: `${server.url}/token`,
    method: 'POST',
    headers: HEADERS,
    dynamic: {
      // An empty pool (after failures) sends a token that does not exist: counted as non-2xx.
      body: () => new URLSearchParams({ grant_type: 'refresh_token', refresh_token: pool.shift() ?? 'exhausted' }).toString(),
      onResponse: (status, body) => {
        if (status !== 200) return;
        const token = (JSON.parse(body) as { refresh_token?: string }).refresh_token;
        if (token) pool.push(token);
      },
    },
  };
}

/** Before any load: one refresh through the load's own request gives a new refresh token and an access token. */
async function verify(server: ServerChild, request: LoadRequest): Promise<void> {
  const response = await fetch(request.url, { method: request.method, headers: request.headers, body: request.dynamic!.body() });
  const text = await response.text();
  request.dynamic!.onResponse(response.status, text);
  const body = response.status === 200 ? JSON.parse(text) as { access_token?: string; refresh_token?: string; id_token?: string } : {};
  if (!body.access_token || !body.refresh_token || !body.id_token) {
    throw new Error(`${server.name}: the refresh does not answer with new tokens.\nHTTP ${response.status}: ${text.slice(0, 500)}\n--- server output ---\n${server.output().trim()}`);
  }
}

async function run(options: BenchOptions): Promise<BenchmarkResult> {
  const port = await freePort();
  const base = fedgateSpec(options);
  const env = { ...base.env, BENCH_PORT: String(port), BENCH_ISSUER: `http://127.0.0.1:${port}` };
  return runSideBySide(options, {
    id: refreshTokens.id,
    title: refreshTokens.title,
    request: `POST /token grant_type=refresh_token by ${CLIENT_ID} (client_secret_basic), each with the refresh token the previous answer of its chain gave (${SCOPE}, ${options.connections * 2} chains of alice); both fedgate with Redis`,
    specs: [
      { ...base, kind: 'read-then-write', name: 'fedgate, consumed by read then write (before)', env: { ...env, BENCH_CONSUME: 'read-then-write' } },
      { ...base, kind: 'atomic', name: 'fedgate, consumed atomically (after)', env },
    ],
    makeRequest: (server) => refreshRequest(server, options.connections * 2),
    verify,
    targetRatio: TARGET_RATIO,
    unit: 'grant',
  });
}

export const refreshTokens: Benchmark = {
  id: 'refresh-tokens',
  title: 'Refresh token grants per second: atomic consumption vs read-then-write',
  run,
};
