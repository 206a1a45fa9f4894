import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import * as oidc from 'openid-client';
import { type ConfigError, loadConfig } from '../../src/config/index.ts';
import { decodeJwt, startServer, type TestServer } from '../support/harness.ts';

/**
 * RFC 7523 client authentication of configured clients, as discovery
 * advertises it, checked with openid-client (an independent implementation
 * of the client side): client_secret_jwt, and private_key_jwt with keys in
 * the configuration (`jwks`) or published by the client (`jwksUri`).
 */
describe('client_secret_jwt and private_key_jwt', () => {
  let server: TestServer;
  let jwksServer: Server;
  let esKey: { privateKey: CryptoKey; jwk: JWK };
  let rsKey: { privateKey: CryptoKey; jwk: JWK };
  const HMAC_SECRET = 'a-client-secret-of-at-least-32-characters';

  const keyPair = async (alg: 'ES256' | 'RS256') => {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    return { privateKey, jwk: { ...await exportJWK(publicKey), alg, use: 'sig', kid: `${alg}-key` } };
  };

  before(async () => {
    esKey = await keyPair('ES256');
    rsKey = await keyPair('RS256');
    // The client's own JWKS endpoint, on loopback.
    jwksServer = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [rsKey.jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const jwksUri = `http://127.0.0.1:${(jwksServer.address() as { port: number }).port}/jwks`;
    server = await startServer({
      configure: (config) => {
        const base = { applicationType: 'web' as const, grantTypes: ['client_credentials' as const], redirectUris: [], postLogoutRedirectUris: [], consentRequired: false };
        config.clients.push(
          { ...base, clientId: 'hmac-client', clientSecret: HMAC_SECRET, tokenEndpointAuthMethod: 'client_secret_jwt' },
          { ...base, clientId: 'key-client', tokenEndpointAuthMethod: 'private_key_jwt', jwks: { keys: [esKey.jwk as Record<string, unknown>] } },
          { ...base, clientId: 'uri-client', tokenEndpointAuthMethod: 'private_key_jwt', jwksUri },
        );
      },
    });
  });
  after(async () => {
    await server?.cleanup();
    await new Promise<void>((resolve) => jwksServer?.close(() => resolve()));
  });

  const discover = (clientId: string, auth: oidc.ClientAuth) =>
    oidc.discovery(new URL(server.issuer), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] });

  it('advertises both methods in discovery', async () => {
    const meta = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as { token_endpoint_auth_methods_supported: string[] };
    assert.ok(meta.token_endpoint_auth_methods_supported.includes('client_secret_jwt'));
    assert.ok(meta.token_endpoint_auth_methods_supported.includes('private_key_jwt'));
  });

  it('issues tokens to clients that authenticate with client_secret_jwt and private_key_jwt (jwks and jwksUri), through openid-client', async () => {
    for (const [clientId, auth] of [
      ['hmac-client', oidc.ClientSecretJwt(HMAC_SECRET)],
      ['key-client', oidc.PrivateKeyJwt({ key: esKey.privateKey, kid: esKey.jwk.kid! })],
      ['uri-client', oidc.PrivateKeyJwt({ key: rsKey.privateKey, kid: rsKey.jwk.kid! })],
    ] as const) {
      const config = await discover(clientId, auth);
      const tokens = await oidc.clientCredentialsGrant(config, { resource: 'https://storage.demo', scope: 'storage.read:/data' }).catch((err: Error) => { throw new Error(`${clientId}: ${err.message} ${JSON.stringify((err as { cause?: unknown }).cause)}`); });
      const payload = decodeJwt(tokens.access_token).payload;
      assert.equal(payload.client_id, clientId);
      assert.equal(payload.aud, 'https://storage.demo');
    }
  });

  it('refuses an assertion signed with another key, with the wrong secret, or used twice', async () => {
    const other = await keyPair('ES256');
    const wrongKey = await discover('key-client', oidc.PrivateKeyJwt({ key: other.privateKey, kid: esKey.jwk.kid! }));
    await assert.rejects(oidc.clientCredentialsGrant(wrongKey, { scope: 'openid' }), (err: { error?: string }) => err.error === 'invalid_client');
    const wrongSecret = await discover('hmac-client', oidc.ClientSecretJwt('not-the-secret-not-the-secret-not-it'));
    await assert.rejects(oidc.clientCredentialsGrant(wrongSecret, { scope: 'openid' }), (err: { error?: string }) => err.error === 'invalid_client');

    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ jti: 'once-only-assertion' })
      .setProtectedHeader({ alg: 'ES256', kid: esKey.jwk.kid! })
      .setIssuer('key-client').setSubject('key-client').setAudience(server.issuer).setIssuedAt(now).setExpirationTime(now + 60)
      .sign(esKey.privateKey);
    const send = () => fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials', client_id: 'key-client',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion,
      }),
    });
    assert.equal((await send()).status, 200);
    const replay = await send();
    assert.equal(replay.status, 401);
    assert.equal((await replay.json() as { error: string }).error, 'invalid_client');
  });

  it('refuses a configuration where the method lacks its keys or secret', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-jwt-auth-'));
    try {
      const file = join(dir, 'fedgate.yaml');
      await writeFile(file, [
        'issuer: https://aai.example.org',
        'clients:',
        '  - { clientId: no-keys, grantTypes: [client_credentials], tokenEndpointAuthMethod: private_key_jwt }',
        '  - { clientId: no-secret, grantTypes: [client_credentials], tokenEndpointAuthMethod: client_secret_jwt }',
        '  - { clientId: both, grantTypes: [client_credentials], tokenEndpointAuthMethod: private_key_jwt, jwksUri: "https://app.example/jwks", jwks: { keys: [{ kty: EC }] } }',
        '',
      ].join('\n'));
      await assert.rejects(loadConfig({ FEDGATE_CONFIG: file }), (err: ConfigError) => {
        assert.ok(err.problems.some((p) => p.startsWith('clients.0.jwks: private_key_jwt needs')), err.problems.join('\n'));
        assert.ok(err.problems.some((p) => p.startsWith('clients.1.clientSecret: client_secret_jwt needs a secret')), err.problems.join('\n'));
        assert.ok(err.problems.some((p) => p.startsWith('clients.2.jwksUri: give jwks or jwksUri, not both')), err.problems.join('\n'));
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
