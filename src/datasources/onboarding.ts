/**
 * The onboarding bundle: everything the operator of a new data source needs
 * to accept fedgate's tokens — the issuer and its keys, the audience and
 * scopes, the introspection client (its secret shown once), where the
 * RFC 9728 metadata is, and configuration snippets for the reverse proxy in
 * front of the service (nginx `auth_request`, Envoy `ext_authz`, Traefik
 * `forwardAuth`), all pointing at fedgate's `/authz`, and for a storage the
 * storage side's own token check (XRootD's SciTokens plugin, `scitokens.cfg`).
 */
import { ruleToJson } from '../authz/rules-json.ts';
import type { AuthzHeaderForm } from '../config/datasource-schema.ts';
import { IDENTITY_HEADER_NAMES } from '../gateway/identity-headers.ts';
import type { IntrospectionCredentials } from './introspection-client.ts';
import { PROTECTED_RESOURCE_WELL_KNOWN, protectedResourceMetadataUrl } from '../gateway/protected-resource.ts';
import type { DataSourceView } from './views.ts';

/** What the data source's operator is handed. */
export interface OnboardingBundle {
  name: string;
  display_name: string;
  kind: string;
  /** The `aud` its tokens carry; what a client asks for with RFC 8707 `resource`. */
  audience: string;
  scopes: string[];
  profile: string;
  access_token_format: 'jwt' | 'opaque';
  access_token_ttl: number | null;
  issuer: string;
  jwks_uri: string;
  authorization_server_metadata: string;
  token_endpoint: string;
  introspection_endpoint: string;
  /** Its introspection client: the secret only in the answer that created it. */
  introspection: { client_id: string; client_secret?: string; token_endpoint_auth_method: 'client_secret_basic' } | null;
  /** The decision endpoint for its reverse proxy. */
  authz_endpoint: string;
  /** `/api/<name>`: the gateway route, with an upstream. */
  gateway_url: string | null;
  protected_resource_metadata: string[];
  policy_domain: string;
  policy_rules: Array<Record<string, string>>;
  /** Reverse proxy snippets; `xrootd` (a `scitokens.cfg`) for storage data sources. */
  snippets: { nginx: string; envoy: string; traefik: string; xrootd?: string };
}

/**
 * The bundle for `view`; `credentials` when a secret was just made (it is
 * never stored anywhere it could be read back, so this is the only time).
 */
export function onboardingBundle(issuer: string, view: DataSourceView, credentials?: IntrospectionCredentials): OnboardingBundle {
  const { spec, effective } = view;
  const clientId = credentials?.client_id ?? view.introspectionClientId;
  return {
    name: spec.name,
    display_name: spec.displayName ?? spec.name,
    kind: spec.kind,
    audience: spec.audience,
    scopes: effective.scopes,
    profile: spec.profile,
    access_token_format: effective.accessTokenFormat,
    access_token_ttl: spec.accessTokenTtl ?? null,
    issuer,
    jwks_uri: `${issuer}/jwks`,
    authorization_server_metadata: `${issuer}/.well-known/openid-configuration`,
    token_endpoint: `${issuer}/token`,
    introspection_endpoint: `${issuer}/token/introspection`,
    introspection: clientId
      ? { client_id: clientId, ...(credentials ? { client_secret: credentials.client_secret } : {}), token_endpoint_auth_method: 'client_secret_basic' }
      : null,
    authz_endpoint: effective.authzUrl,
    gateway_url: effective.gatewayUrl,
    protected_resource_metadata: effective.protectedResourceMetadata,
    policy_domain: effective.domain,
    policy_rules: view.lines.map(ruleToJson),
    snippets: {
      nginx: formNote(view, 'nginx') + nginxSnippet(issuer, view),
      envoy: formNote(view, 'envoy') + envoySnippet(issuer, view),
      traefik: formNote(view, 'traefik') + traefikSnippet(issuer, view),
      ...(spec.kind === 'storage' ? { xrootd: xrootdSnippet(issuer, view) } : {}),
    },
  };
}

/**
 * XRootD's SciTokens plugin (`libXrdAccSciTokens`, scitokens-cpp) checks
 * fedgate's JWTs itself: the issuer, the audience, and the storage scopes,
 * read relative to `base_path` (WLCG profile §4.1.1), which is the data
 * source's `storage.basePath` — the paths in its tokens are relative to it.
 */
function xrootdSnippet(issuer: string, view: DataSourceView): string {
  const { spec } = view;
  const base = spec.storage?.basePath.replace(/\/+$/, '') || '/';
  return [
    '# /etc/xrootd/scitokens.cfg; in xrootd.cfg:',
    '#   ofs.authorize 1',
    '#   ofs.authlib libXrdAccSciTokens.so config=/etc/xrootd/scitokens.cfg',
    '[Global]',
    `audience = ${spec.audience}`,
    '',
    `[Issuer ${spec.name}]`,
    `issuer = ${issuer}`,
    `base_path = ${base}`,
    '',
  ].join('\n');
}

/** A first line for the snippets of the forms the data source is not asked in: `/authz` believes only its `authzHeaders` form. */
function formNote(view: DataSourceView, form: AuthzHeaderForm): string {
  const current = view.spec.authzHeaders;
  return current === form ? '' : `# This data source takes /authz questions in the ${current} form: set its authzHeaders to ${form} to use this snippet.\n`;
}

/** nginx variable name of an identity header (`X-Fedgate-User` → `fedgate_user`). */
function nginxVariable(header: string): string {
  return header.toLowerCase().replace(/^x-/, '').replaceAll('-', '_');
}

/** nginx variable of a response header of the subrequest (`X-Fedgate-User` → `upstream_http_x_fedgate_user`). */
function upstreamVariable(header: string): string {
  return `upstream_http_${header.toLowerCase().replaceAll('-', '_')}`;
}

/** Where the service behind the proxy is: its upstream when it has one, else a placeholder. */
function backend(view: DataSourceView): string {
  return view.spec.upstream ?? 'http://127.0.0.1:8000';
}

/**
 * nginx `auth_request`: every request is first asked of fedgate's `/authz`
 * (the original method and URI in `X-Original-*`); the identity comes back in
 * `X-Fedgate-*` headers and is passed on, the 401 challenge goes back to the
 * client. The audience's own RFC 9728 document is proxied from fedgate.
 */
export function nginxSnippet(issuer: string, view: DataSourceView): string {
  const { spec } = view;
  const audienceUrl = URL.parse(spec.audience);
  const wellKnown = audienceUrl && /^https?:$/.test(audienceUrl.protocol)
    ? new URL(protectedResourceMetadataUrl(spec.audience)).pathname
    : PROTECTED_RESOURCE_WELL_KNOWN;
  const identity = IDENTITY_HEADER_NAMES.map((h) => `    auth_request_set $${nginxVariable(h)} $${upstreamVariable(h)};`);
  const forward = IDENTITY_HEADER_NAMES.map((h) => `    proxy_set_header ${h} $${nginxVariable(h)};`);
  return [
    `# fedgate: data source "${spec.name}" (${spec.audience})`,
    '# In the server {} block in front of the service. Every request is decided by',
    `# fedgate (${issuer}/authz); the identity arrives in X-Fedgate-* headers.`,
    'location / {',
    '    auth_request /_fedgate_authz;',
    ...identity,
    '    auth_request_set $fedgate_www_authenticate $upstream_http_www_authenticate;',
    '    add_header WWW-Authenticate $fedgate_www_authenticate always;',
    ...forward,
    '    proxy_set_header X-HTTP-Method-Override "";',
    '    proxy_set_header X-Method-Override "";',
    `    proxy_pass ${backend(view)};`,
    '}',
    '',
    'location = /_fedgate_authz {',
    '    internal;',
    `    proxy_pass ${issuer}/authz?service=${spec.name};`,
    '    proxy_pass_request_body off;',
    '    proxy_set_header Content-Length "";',
    '    proxy_set_header X-Original-Method $request_method;',
    '    proxy_set_header X-Original-URI $request_uri;',
    '    # Authorization and DPoP travel with the subrequest; for DPoP proofs fedgate',
    '    # checks the URL the client called (X-Forwarded-Proto / X-Forwarded-Host).',
    '    proxy_set_header X-Forwarded-Proto $scheme;',
    '    proxy_set_header X-Forwarded-Host $host;',
    '}',
    '',
    '# RFC 9728: clients discover the issuer and scopes of this resource here.',
    `location = ${wellKnown} {`,
    `    proxy_pass ${issuer}${PROTECTED_RESOURCE_WELL_KNOWN}?resource=${encodeURIComponent(spec.audience)};`,
    '}',
    '',
  ].join('\n');
}

/**
 * Envoy's HTTP `ext_authz` filter in its path-prefix form (`/authz<original
 * path>`, the original method): fedgate finds the data source by the Host
 * header, so the hosts clients use must be listed in the data source's `hosts`.
 */
export function envoySnippet(issuer: string, view: DataSourceView): string {
  const { spec } = view;
  const url = new URL(issuer);
  const tls = url.protocol === 'https:';
  const port = url.port || (tls ? '443' : '80');
  const hostsNote = spec.hosts.length
    ? `# fedgate picks this data source by the Host header: ${spec.hosts.join(', ')}.`
    : '# fedgate picks the data source by the Host header: add the host name(s) clients use to this data source\'s "hosts" first.';
  return [
    `# fedgate: data source "${spec.name}" (${spec.audience}) — Envoy HTTP ext_authz`,
    hostsNote,
    '# (Envoy before 1.27: put allowed_headers under http_service.authorization_request.)',
    'http_filters:',
    '  - name: envoy.filters.http.ext_authz',
    '    typed_config:',
    '      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
    '      transport_api_version: V3',
    '      failure_mode_allow: false',
    '      allowed_headers:',
    '        patterns:',
    '          - exact: authorization',
    '          - exact: dpop',
    '      http_service:',
    '        server_uri:',
    `          uri: ${issuer}`,
    '          cluster: fedgate',
    '          timeout: 2s',
    `        path_prefix: ${url.pathname.replace(/\/$/, '')}/authz`,
    '        authorization_response:',
    '          allowed_upstream_headers:',
    '            patterns:',
    '              - prefix: x-fedgate-',
    '          allowed_client_headers:',
    '            patterns:',
    '              - exact: www-authenticate',
    '  - name: envoy.filters.http.router',
    '    typed_config:',
    '      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
    'clusters:',
    '  - name: fedgate',
    '    type: STRICT_DNS',
    '    connect_timeout: 2s',
    '    load_assignment:',
    '      cluster_name: fedgate',
    '      endpoints:',
    '        - lb_endpoints:',
    '            - endpoint:',
    '                address:',
    `                  socket_address: { address: ${url.hostname}, port_value: ${port} }`,
    ...(tls ? [
      '    transport_socket:',
      '      name: envoy.transport_sockets.tls',
      '      typed_config:',
      '        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      `        sni: ${url.hostname}`,
    ] : []),
    '',
  ].join('\n');
}

/**
 * Traefik's `forwardAuth` middleware (file provider, dynamic configuration):
 * Traefik sends the original request as `X-Forwarded-Method` / `-Uri` /
 * `-Host`; `?service=` names the data source.
 */
export function traefikSnippet(issuer: string, view: DataSourceView): string {
  const { spec } = view;
  const host = spec.hosts[0] ?? (URL.parse(spec.audience)?.host || 'service.example.org');
  return [
    `# fedgate: data source "${spec.name}" (${spec.audience}) — Traefik dynamic configuration`,
    'http:',
    '  middlewares:',
    `    fedgate-${spec.name}:`,
    '      forwardAuth:',
    `        address: "${issuer}/authz?service=${spec.name}"`,
    '        trustForwardHeader: false',
    '        authRequestHeaders:',
    '          - Authorization',
    '          - DPoP',
    '        authResponseHeadersRegex: "^X-Fedgate-"',
    '  routers:',
    `    ${spec.name}:`,
    `      rule: "Host(\`${host.replace(/:\d+$/, '')}\`)"`,
    `      middlewares: [fedgate-${spec.name}]`,
    `      service: ${spec.name}`,
    '  services:',
    `    ${spec.name}:`,
    '      loadBalancer:',
    '        servers:',
    `          - url: "${backend(view)}"`,
    '',
  ].join('\n');
}
