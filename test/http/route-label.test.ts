import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { adminToken, startServer, type TestServer } from '../support/harness.ts';

/** Every route label /metrics shows, with the request count of each. */
async function routeCounts(issuer: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${issuer}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^fedgate_http_requests_total\{route="([^"]*)",[^}]*\} (\d+)$/gm)) {
    counts.set(match[1]!, (counts.get(match[1]!) ?? 0) + Number(match[2]));
  }
  return counts;
}

describe('route labels in /metrics', () => {
  let server: TestServer;
  before(async () => { server = await startServer(); });
  after(() => server.cleanup());

  it('name the route, never the raw path, for router routes, oidc-provider endpoints, the gateway and the metadata endpoint', async () => {
    const paths = [
      '/admin/api/groups/%2Fatlas', '/admin/api/groups/%2Fcms',
      '/authz', '/api/data/store/cms/a', '/api/data/store/cms/b', '/api/no-such-service/x',
      '/.well-known/oauth-protected-resource/api/data', '/jwks', '/no/such/path/1', '/no/such/path/2',
    ];
    const token = await adminToken(server.issuer);
    for (const path of paths) {
      const headers = path.startsWith('/admin/') ? { authorization: `Bearer ${token}` } : undefined;
      await (await fetch(`${server.issuer}${path}`, { headers })).arrayBuffer();
    }
    const counts = await routeCounts(server.issuer);
    assert.equal(counts.get('/admin/api/groups/:group'), 2);
    assert.ok((counts.get('/authz') ?? 0) >= 1);
    // Without a token the gateway answers before choosing the service's own label.
    assert.equal(counts.get('/api/:service'), 3);
    assert.equal(counts.get('/.well-known/oauth-protected-resource'), 1);
    assert.equal(counts.get('jwks'), 1);
    assert.equal(counts.get('unmatched'), 2);
    for (const label of counts.keys()) assert.doesNotMatch(label, /atlas|cms|no-such|\/no\/such/, `raw path in label ${label}`);
  });
});
