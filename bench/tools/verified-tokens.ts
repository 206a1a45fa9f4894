/**
 * CPU time of answering an already verified JWT access token from the cache,
 * on the two paths that verify fedgate's own tokens: the gateway's
 * `TokenVerifier.verify` (every `/api`, `/authz` and admin API request) and
 * token exchange's `PresentedTokens.resolve` (a service's own client token,
 * which needs no store read). In process, one path at a time, CPU µs per
 * call after a warm-up: on a busy machine this compares two trees more
 * steadily than the HTTP benchmarks, whose figures move with the load.
 *
 *   node bench/tools/verified-tokens.ts [tree=.]
 *
 * `tree` is the root of a fedgate checkout to measure, so that a baseline
 * (`git archive <rev> | tar -x -C /tmp/base`, with a node_modules link) and
 * the working tree can be run alternately with the same script.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { importJWK, SignJWT, type JWK } from 'jose';

const tree = resolve(process.argv[2] ?? '.');
const { TokenVerifier } = await import(join(tree, 'src/gateway/token-verifier.ts'));
const { PresentedTokens } = await import(join(tree, 'src/exchange/presented-token.ts'));
const { loadOrCreateKeys, publicJwks, jwksForProvider } = await import(join(tree, 'src/keys/index.ts'));
const { Accounts } = await import(join(tree, 'src/accounts/accounts.ts'));
const { MemoryStore } = await import(join(tree, 'src/store/index.ts'));

const dir = await mkdtemp(join(tmpdir(), 'fedgate-verified-tokens-'));
const keys = await loadOrCreateKeys(dir);
const jwks = publicJwks(keys);
const store = new MemoryStore();
const accounts = new Accounts(store);
const issuer = 'https://id.example';
const key = (jwksForProvider(keys).keys as JWK[]).find((k) => k.alg === 'ES256')!;
const now = Math.floor(Date.now() / 1000);
// A client's own token (sub = client_id): no account or grant to read on either path.
const token = await new SignJWT({
  iss: issuer, sub: 'svc', client_id: 'svc', aud: 'https://orchestrator.demo', scope: 'compute.read storage.read:/store/cms', iat: now, exp: now + 3600, jti: 'bench',
}).setProtectedHeader({ alg: 'ES256', kid: key.kid!, typ: 'at+jwt' }).sign(await importJWK(key, 'ES256'));

const gateway = new TokenVerifier({ issuer, accounts, jwks: () => jwks, provider: () => ({}), policyVersion: () => 1, cacheSize: 1000 });
const exchange = new PresentedTokens({ issuer, store, accounts, provider: {}, jwks: jwksForProvider(keys), trustedIssuers: { has: () => false } });

async function cpuMicros(fn: () => Promise<unknown>, n = 200_000): Promise<number> {
  for (let i = 0; i < 20_000; i++) await fn();
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) await fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n;
}

const gatewayUs = await cpuMicros(() => gateway.verify(token));
const exchangeUs = await cpuMicros(() => exchange.resolve(token, 'access_token', 'svc'));
process.stdout.write(`${JSON.stringify({ tree, gatewayUs: +gatewayUs.toFixed(3), exchangeUs: +exchangeUs.toFixed(3) })}\n`);
await store.close();
await rm(dir, { recursive: true, force: true });
