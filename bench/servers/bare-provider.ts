/**
 * Baseline server for the token issuance benchmark: a bare oidc-provider
 * with its default (development, in-memory) adapter and no fedgate code,
 * issuing ES256 JWT access tokens to one client_credentials client.
 * Run by bench/token-issuance.ts in its own process; reports its port over IPC.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import Provider from 'oidc-provider';
import { serveUnderBench } from '../lib/ipc.ts';
import { AUDIENCE, CLIENT_ID, CLIENT_SECRET, SCOPE } from './token-request.ts';

const { privateKey } = await generateKeyPair('ES256', { extractable: true });
const jwk = await exportJWK(privateKey);
const signingKey = { ...jwk, alg: 'ES256', use: 'sig', kid: await calculateJwkThumbprint(jwk) };

const provider = new Provider(process.env.BENCH_ISSUER ?? 'http://localhost:8080', {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  }],
  // The only key is ES256, so ID token signing (unused here) must default to it too.
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [signingKey] },
  // Only to quiet the development-keys notice; cookies play no part in this grant.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      getResourceServerInfo: () => ({
        audience: AUDIENCE,
        scope: SCOPE,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 3600,
        jwt: { sign: { alg: 'ES256' } },
      }),
      useGrantedResource: () => true,
    },
  },
});

const server = createServer(provider.callback());
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
serveUnderBench(server, async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
