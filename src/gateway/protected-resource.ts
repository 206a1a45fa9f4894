/**
 * OAuth 2.0 Protected Resource Metadata (RFC 9728) for the data sources
 * fedgate fronts: where their documents live and what they say.
 */

/** RFC 9728 §3: the well-known URI suffix of protected resource metadata. */
export const PROTECTED_RESOURCE_WELL_KNOWN = '/.well-known/oauth-protected-resource';

/** DPoP proof algorithms the gateway verifies (src/gateway/dpop.ts). */
const DPOP_ALGS = ['ES256', 'EdDSA'];

/** The resource identifier of a data source behind the gateway: `<issuer>/api/<name>`. */
export function gatewayResource(issuer: string, name: string): string {
  return `${issuer}/api/${name}`;
}

/**
 * Where the metadata of `resource` is (RFC 9728 §3.1): the well-known suffix
 * inserted between the host and the path, a terminating slash removed
 * (`https://id.example/api/x` → `https://id.example/.well-known/oauth-protected-resource/api/x`).
 */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === '/' ? '' : url.pathname;
  return `${url.origin}${PROTECTED_RESOURCE_WELL_KNOWN}${path}${url.search}`;
}

/** fedgate's own address for the metadata of a data source named by its audience (for data sources without a gateway route). */
export function audienceMetadataUrl(issuer: string, audience: string): string {
  return `${issuer}${PROTECTED_RESOURCE_WELL_KNOWN}?resource=${encodeURIComponent(audience)}`;
}

/** What a metadata document is made of. */
export interface ProtectedResourceFacts {
  /** The resource identifier the document is for (RFC 9728 §3.3: exactly the one it was asked for). */
  resource: string;
  /** The audience tokens for it carry (RFC 8707 `resource` / RFC 8693 `audience` to ask for). */
  audience: string;
  issuer: string;
  scopes: readonly string[];
  displayName: string;
  /** Certificate-bound tokens (RFC 8705) are checked: fedgate sees client certificates. */
  mtls: boolean;
}

/**
 * The metadata document (RFC 9728 §2). Besides the registered parameters it
 * carries `audience`: the value a token for this resource holds in `aud`,
 * which a client may also send as the RFC 8707 `resource` parameter (the
 * gateway's resource identifier works too).
 */
export function protectedResourceMetadata(facts: ProtectedResourceFacts): Record<string, unknown> {
  return {
    resource: facts.resource,
    authorization_servers: [facts.issuer],
    scopes_supported: [...facts.scopes],
    bearer_methods_supported: ['header'],
    resource_name: facts.displayName,
    dpop_signing_alg_values_supported: DPOP_ALGS,
    ...(facts.mtls ? { tls_client_certificate_bound_access_tokens: true } : {}),
    audience: facts.audience,
  };
}
