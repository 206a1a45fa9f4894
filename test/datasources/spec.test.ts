import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, loadConfig } from '../../src/config/index.ts';
import { parseDatasourceCommand, UsageError } from '../../src/datasources/cli.ts';
import { IDENTITY_HEADER_NAMES } from '../../src/gateway/identity-headers.ts';
import {
  DataSourceError, onboardingBundle, parseDataSource, type DataSourceView, policyLinesOf, protectedResourceMetadata, protectedResourceMetadataUrl, resourceServerOf, serviceOf,
} from '../../src/datasources/index.ts';
import { accessTokenFormatOf, effectiveScopes, operationsOf } from '../../src/datasources/spec.ts';

const problemsOf = (input: unknown) => {
  try {
    parseDataSource(input);
  } catch (err) {
    assert.ok(err instanceof DataSourceError);
    assert.equal(err.code, 'invalid_request');
    return err.problems;
  }
  throw new Error('accepted');
};

describe('a data source record and what it turns into', () => {
  it('generates the WLCG storage scopes at the base path, and the compute scopes for compute', () => {
    assert.deepEqual(effectiveScopes(parseDataSource({ name: 's', audience: 'https://s.test', kind: 'storage', storage: { basePath: '/data/' } })),
      ['storage.read:/data', 'storage.create:/data', 'storage.modify:/data', 'storage.stage:/data', 'storage.poll:/data']);
    assert.deepEqual(effectiveScopes(parseDataSource({ name: 's', audience: 'https://s.test', kind: 'storage', storage: { basePath: '/' }, scopes: ['storage.read:/public'] })),
      ['storage.read:/public', 'storage.read:/', 'storage.create:/', 'storage.modify:/', 'storage.stage:/', 'storage.poll:/']);
    assert.deepEqual(effectiveScopes(parseDataSource({ name: 'c', audience: 'https://c.test', kind: 'compute' })), ['compute.read', 'compute.modify', 'compute.create', 'compute.cancel']);
    assert.deepEqual(effectiveScopes(parseDataSource({ name: 'c', audience: 'https://c.test', kind: 'compute', scopes: ['compute.read'] })), ['compute.read'], 'an explicit list replaces the default');
    assert.deepEqual(effectiveScopes(parseDataSource({ name: 'm', audience: 'urn:example:ml', kind: 'ml', scopes: ['ml.inference'] })), ['ml.inference']);
  });

  it('derives the resource server and the gateway service', () => {
    const spec = parseDataSource({
      name: 'sync-a', audience: 'https://sync.a.test', displayName: 'Sync A', kind: 'sync', scopes: ['sync.read'], profile: 'aarc', accessTokenTtl: 600,
      upstream: 'https://sync.a.test/remote.php', hosts: ['sync.a.test'], introspection: true, domain: 'sync-domain',
    });
    assert.deepEqual(resourceServerOf(spec), {
      audience: 'https://sync.a.test', name: 'Sync A', kind: 'sync', scopes: ['sync.read'], profile: 'aarc', accessTokenTtl: 600, accessTokenFormat: 'opaque', signingAlg: 'ES256',
    });
    assert.deepEqual(serviceOf(spec), {
      name: 'sync-a', domain: 'sync-domain', audience: 'https://sync.a.test', upstream: 'https://sync.a.test/remote.php', hosts: ['sync.a.test'], authzHeaders: 'nginx', timeoutSeconds: 30, forwardToken: true,
    });
    assert.equal(accessTokenFormatOf({ introspection: false }), 'jwt');
    assert.equal(accessTokenFormatOf({ introspection: true, accessTokenFormat: 'jwt' }), 'jwt');
  });

  it('brings named operations, default rules in its domain and scope grants for its audience', () => {
    const spec = parseDataSource({
      name: 'hpc', audience: 'https://hpc.test', kind: 'compute',
      defaultPolicies: [{ group: '/cms', path: '/jobs/**', action: 'deploy', scope: 'compute.create' }, { group: '/atlas', path: '*', action: '*', effect: 'deny' }],
      scopeGrants: [{ group: '/cms', scope: 'compute.create' }],
    });
    assert.deepEqual(operationsOf(spec), { read: ['GET', 'HEAD'], deploy: ['POST', 'PUT'], undeploy: ['DELETE'] });
    assert.deepEqual(policyLinesOf(spec).map(({ line }) => [line.ptype, ...line.values].join(', ')), [
      'g2, GET, read, hpc', 'g2, HEAD, read, hpc', 'g2, POST, deploy, hpc', 'g2, PUT, deploy, hpc', 'g2, DELETE, undeploy, hpc',
      'p, /cms, hpc, /jobs/**, deploy, allow, compute.create',
      'p, /atlas, hpc, *, *, deny, ',
      'p, /cms, scopes, https://hpc.test, compute.create, allow, ',
    ]);
    const custom = parseDataSource({ name: 'x', audience: 'https://x.test', operations: { fetch: ['GET'], store: ['PUT', 'PUT'] } });
    assert.deepEqual(policyLinesOf(custom).map(({ line }) => line.values.join(' ')), ['GET fetch x', 'PUT store x']);
  });

  it('names every bad field with its reason', () => {
    const fields = problemsOf({ name: 'Bad Name', audience: '/relative', kind: 'storage', storage: { basePath: 'data' }, upstream: 'ftp://x', profile: 'x', hosts: ['a b'] })
      .map((p) => p.field).sort();
    assert.deepEqual(fields, ['audience', 'hosts.0', 'name', 'profile', 'storage.basePath', 'upstream']);
    assert.deepEqual(problemsOf({ name: 'a', audience: 'https://a.test', kind: 'ml', storage: { basePath: '/x' } }).map((p) => p.field), ['storage']);
    assert.deepEqual(problemsOf({ name: 'a', audience: 'https://a.test', defaultPolicies: [{ group: 'cms', path: '/x', action: 'read' }] }).map((p) => p.field), ['defaultPolicies.0.group']);
    assert.deepEqual(problemsOf({ name: 'a', audience: 'https://a.test', scopes: ['has space'] }).map((p) => p.field), ['scopes.0']);
    assert.deepEqual(problemsOf([]).map((p) => p.field), ['(body)']);
  });

  it('is checked in the configuration file like everywhere else', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedgate-config-'));
    try {
      const file = join(dir, 'fedgate.yaml');
      await writeFile(file, stringify({
        dataSources: [
          { name: 'one', audience: 'https://one.test', kind: 'storage', storage: { basePath: '/one' } },
          { name: 'one', audience: 'https://one.test', kind: 'storage', storage: { basePath: 'two' } },
        ],
      }));
      await assert.rejects(loadConfig({ FEDGATE_CONFIG: file }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const text = err.problems.join('\n');
        assert.match(text, /dataSources\.1\.storage\.basePath: must be an absolute path/);
        return true;
      });
      await writeFile(file, stringify({ dataSources: [{ name: 'one', audience: 'https://one.test' }, { name: 'one', audience: 'https://one.test' }] }));
      await assert.rejects(loadConfig({ FEDGATE_CONFIG: file }), /dataSources\.1\.name: duplicate data source one[\s\S]*dataSources\.1\.audience: duplicate audience/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('RFC 9728 locations and documents', () => {
  it('inserts the well-known suffix between host and path (§3.1)', () => {
    assert.equal(protectedResourceMetadataUrl('https://id.example/api/store'), 'https://id.example/.well-known/oauth-protected-resource/api/store');
    assert.equal(protectedResourceMetadataUrl('https://storage.example/'), 'https://storage.example/.well-known/oauth-protected-resource');
    assert.equal(protectedResourceMetadataUrl('https://id.example/fedgate/api/x'), 'https://id.example/.well-known/oauth-protected-resource/fedgate/api/x');
  });

  it('writes the registered parameters and the audience', () => {
    assert.deepEqual(protectedResourceMetadata({
      resource: 'https://id.example/api/s', audience: 'https://s.example', issuer: 'https://id.example', scopes: ['s.read'], displayName: 'S', mtls: true,
    }), {
      resource: 'https://id.example/api/s',
      authorization_servers: ['https://id.example'],
      scopes_supported: ['s.read'],
      bearer_methods_supported: ['header'],
      resource_name: 'S',
      dpop_signing_alg_values_supported: ['ES256', 'EdDSA'],
      tls_client_certificate_bound_access_tokens: true,
      audience: 'https://s.example',
    });
  });
});

describe('the datasource command line', () => {
  it('turns options into a record', () => {
    const command = parseDatasourceCommand([
      'add', '--name', 'tape', '--audience', 'https://tape.test', '--kind', 'storage', '--base-path', '/tape', '--scope', 'tape.admin',
      '--policy', '/cms:/tape/cms/**:read:storage.read', '--policy', '/atlas:/tape/**:*:deny', '--grant', '/cms:storage.read:/tape/cms',
      '--token-ttl', '600', '--introspection', '--host', 'tape.test',
    ]);
    assert.deepEqual(command, {
      action: 'add',
      file: undefined,
      input: {
        name: 'tape', audience: 'https://tape.test', kind: 'storage', storage: { basePath: '/tape' }, scopes: ['tape.admin'], accessTokenTtl: 600,
        hosts: ['tape.test'], introspection: true,
        defaultPolicies: [{ group: '/cms', path: '/tape/cms/**', action: 'read', scope: 'storage.read' }, { group: '/atlas', path: '/tape/**', action: '*', effect: 'deny' }],
        scopeGrants: [{ group: '/cms', scope: 'storage.read:/tape/cms' }],
      },
    });
    assert.deepEqual(parseDatasourceCommand(['remove', 'tape']), { action: 'remove', name: 'tape' });
    assert.deepEqual(parseDatasourceCommand(['list', '--json']), { action: 'list', json: true });
    assert.throws(() => parseDatasourceCommand(['add', '--grant', 'nocolon']), UsageError);
    assert.throws(() => parseDatasourceCommand(['add', '--bogus']), UsageError);
    assert.throws(() => parseDatasourceCommand(['remove']), UsageError);
  });
});

describe('the onboarding bundle', () => {
  const view = (spec: Record<string, unknown>): DataSourceView => {
    const parsed = parseDataSource(spec);
    return {
      spec: parsed,
      effective: {
        scopes: effectiveScopes(parsed), domain: parsed.name, accessTokenFormat: accessTokenFormatOf(parsed), operations: operationsOf(parsed),
        gatewayUrl: parsed.upstream ? `https://id.example/api/${parsed.name}` : null, authzUrl: `https://id.example/authz?service=${parsed.name}`, protectedResourceMetadata: [],
      },
      source: 'store', readOnly: false, lines: policyLinesOf(parsed).map((l) => l.line), introspectionClientId: 'introspect-s-1',
    };
  };

  it('hands the operator the issuer, keys, audience, scopes and the secret once', () => {
    const v = view({ name: 's', audience: 'https://s.example/v1', kind: 'storage', storage: { basePath: '/data' }, introspection: true });
    const withSecret = onboardingBundle('https://id.example', v, { client_id: 'introspect-s-1', client_secret: 'secret' });
    assert.equal(withSecret.jwks_uri, 'https://id.example/jwks');
    assert.equal(withSecret.token_endpoint, 'https://id.example/token');
    assert.equal(withSecret.introspection_endpoint, 'https://id.example/token/introspection');
    assert.deepEqual(withSecret.introspection, { client_id: 'introspect-s-1', client_secret: 'secret', token_endpoint_auth_method: 'client_secret_basic' });
    assert.equal(withSecret.access_token_format, 'opaque');
    assert.deepEqual(onboardingBundle('https://id.example', v).introspection, { client_id: 'introspect-s-1', token_endpoint_auth_method: 'client_secret_basic' });
  });

  it('writes nginx auth_request, Envoy ext_authz and Traefik forwardAuth snippets pointing at /authz', () => {
    const v = view({ name: 's', audience: 'https://s.example/v1', kind: 'storage', storage: { basePath: '/data' }, upstream: 'http://10.0.0.5:8080', hosts: ['s.example'] });
    const { nginx, envoy, traefik } = onboardingBundle('https://id.example', v).snippets;
    assert.match(nginx, /^ {4}auth_request \/_fedgate_authz;$/m);
    for (const header of IDENTITY_HEADER_NAMES) {
      const variable = header.toLowerCase().replace(/^x-/, '').replaceAll('-', '_');
      assert.ok(nginx.includes(`auth_request_set $${variable} $upstream_http_${header.toLowerCase().replaceAll('-', '_')};`), header);
      assert.ok(nginx.includes(`proxy_set_header ${header} $${variable};`), header);
    }
    assert.match(nginx, /proxy_pass https:\/\/id\.example\/authz\?service=s;/);
    assert.match(nginx, /proxy_set_header X-Original-URI \$request_uri;/);
    assert.match(nginx, /proxy_pass http:\/\/10\.0\.0\.5:8080;/);
    assert.match(nginx, /location = \/\.well-known\/oauth-protected-resource\/v1 \{\n {4}proxy_pass https:\/\/id\.example\/\.well-known\/oauth-protected-resource\?resource=https%3A%2F%2Fs\.example%2Fv1;/);
    assert.match(envoy, /path_prefix: \/authz/);
    assert.match(envoy, /socket_address: \{ address: id\.example, port_value: 443 \}/);
    assert.match(envoy, /UpstreamTlsContext/);
    assert.match(envoy, /Host header: s\.example/);
    assert.match(traefik, /address: "https:\/\/id\.example\/authz\?service=s"/);
    assert.match(traefik, /rule: "Host\(`s\.example`\)"/);
    assert.match(traefik, /authResponseHeadersRegex: "\^X-Fedgate-"/);
    const plain = onboardingBundle('http://127.0.0.1:8080', view({ name: 'p', audience: 'urn:example:p' })).snippets;
    assert.doesNotMatch(plain.envoy, /UpstreamTlsContext/);
    assert.match(plain.envoy, /add the host name\(s\) clients use/);
  });
});
