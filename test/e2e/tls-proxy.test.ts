import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { createLocalJWKSet, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { Agent, fetch as undiciFetch } from 'undici';
import { freePort, startServer, within, type TestServer } from '../support/harness.ts';

const run = promisify(execFile);

/**
 * The demo realm behind a real TLS-terminating nginx: trustProxy and
 * trustedProxies come from the environment (a configuration file would
 * replace the demo realm), so discovery advertises the public https URLs.
 */
describe('discovery and JWKS behind a TLS proxy (demo realm, settings from the environment)', () => {
  let dir: string;
  let server: TestServer;
  let nginx: ChildProcess;
  let issuer: string;
  let agent: Agent;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedgate-tls-proxy-'));
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
    const proxyPort = await freePort();
    issuer = `https://localhost:${proxyPort}`;
    server = await startServer({ env: { ISSUER: issuer, FEDGATE_TRUST_PROXY: 'true', FEDGATE_TRUSTED_PROXIES: '127.0.0.1, ::1' } });
    const upstream = new URL(server.issuer);
    await writeFile(join(dir, 'nginx.conf'), `
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 64; }
worker_processes 1;
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${proxyPort} ssl;
    ssl_certificate ${join(dir, 'cert.pem')};
    ssl_certificate_key ${join(dir, 'key.pem')};
    location / {
      proxy_pass http://127.0.0.1:${upstream.port};
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`);
    nginx = spawn('nginx', ['-e', join(dir, 'error.log'), '-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: 'ignore' });
    agent = new Agent({ connect: { ca: await readFile(join(dir, 'cert.pem')) } });
    await within(10_000, async () => (await undiciFetch(`${issuer}/healthz`, { dispatcher: agent }).catch(() => undefined))?.status === 200);
  });
  after(async () => {
    nginx?.kill('SIGTERM');
    await agent?.close();
    await server?.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads FEDGATE_TRUST_PROXY and FEDGATE_TRUSTED_PROXIES into the configuration', () => {
    assert.equal(server.config.trustProxy, true);
    assert.deepEqual(server.config.trustedProxies, ['127.0.0.1', '::1']);
    assert.equal(server.config.demo, true);
  });

  it('advertises https endpoints and the JWKS verifies tokens fetched through the proxy (openid-client)', async () => {
    const customFetch = ((url: string, init: Parameters<typeof undiciFetch>[1]) => undiciFetch(url, { ...init, dispatcher: agent })) as unknown as oidc.CustomFetch;
    const client = await oidc.discovery(new URL(issuer), 'demo-service', 'demo-service-secret', undefined, { [oidc.customFetch]: customFetch } as oidc.DiscoveryRequestOptions);
    const meta = client.serverMetadata();
    assert.equal(meta.issuer, issuer);
    assert.equal(meta.jwks_uri, `${issuer}/jwks`);
    assert.equal(meta.token_endpoint, `${issuer}/token`);
    client[oidc.customFetch] = customFetch;
    const tokens = await oidc.clientCredentialsGrant(client, { resource: 'https://storage.demo', scope: 'storage.read:/store' });
    const jwks = await (await undiciFetch(meta.jwks_uri!, { dispatcher: agent })).json() as Parameters<typeof createLocalJWKSet>[0];
    const { payload } = await jwtVerify(tokens.access_token, createLocalJWKSet(jwks), { issuer, audience: 'https://storage.demo' });
    assert.equal(payload.scope, 'storage.read:/store');
  });

  it('refuses a malformed FEDGATE_TRUST_PROXY or FEDGATE_TRUSTED_PROXIES', async () => {
    const { loadConfig, ConfigError } = await import('../../src/config/index.ts');
    await assert.rejects(loadConfig({ FEDGATE_TRUST_PROXY: 'maybe' }), (err: InstanceType<typeof ConfigError>) => err.problems[0]!.startsWith('FEDGATE_TRUST_PROXY: '));
    await assert.rejects(loadConfig({ FEDGATE_TRUSTED_PROXIES: '10.0.0.0/8,not-an-address' }), (err: InstanceType<typeof ConfigError>) => err.problems[0]!.startsWith('trustedProxies.1: '));
  });
});
