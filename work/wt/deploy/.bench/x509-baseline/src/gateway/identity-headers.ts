/**
 * The identity headers fedgate hands to upstreams (proxy) and to the
 * reverse proxy in front of them (`/authz`, for nginx `auth_request_set`,
 * Traefik `authResponseHeaders`, Envoy `allowed_upstream_headers`).
 *
 * An upstream trusts these headers, so a client must never be able to send
 * them itself: every header in the identity family (and the ones other
 * gateways and auth proxies use for the same purpose) is removed from the
 * client's request before fedgate adds its own.
 */
import type { Identity } from './token-verifier.ts';

/** The headers fedgate sets, in the order it sets them. */
export const IDENTITY_HEADER_NAMES = [
  'X-Fedgate-Subject',
  'X-Fedgate-User',
  'X-Fedgate-Groups',
  'X-Fedgate-Client',
  'X-Fedgate-Scope',
  'X-Fedgate-Audience',
  'X-Fedgate-Token-Expires',
] as const;

/** Headers (lower case) a client may not pass on: identities asserted by other auth proxies, and client certificates. */
const STRIPPED = new Set([
  'x-forwarded-user', 'x-forwarded-email', 'x-forwarded-groups', 'x-forwarded-preferred-username', 'x-forwarded-access-token',
  'x-remote-user', 'remote-user', 'x-remote-group', 'x-remote-groups',
  'x-forwarded-client-cert', 'client-cert', 'client-cert-chain', 'ssl-client-cert', 'x-ssl-client-cert',
]);

/**
 * Whether a request header (lower-case name) is one fedgate removes before
 * forwarding: anything `x-fedgate-*` or `x-auth-request-*` (oauth2-proxy),
 * user/group headers of other auth proxies, and client certificate headers
 * (RFC 9440 and the nginx/Envoy forms).
 */
export function isStrippedHeader(name: string): boolean {
  return name.startsWith('x-fedgate-') || name.startsWith('x-auth-request-') || STRIPPED.has(name);
}

/**
 * A header-safe form of `value`: unchanged when it is printable ASCII;
 * otherwise every character outside printable ASCII, and `%`, is
 * percent-encoded (UTF-8), so CR/LF can never split a header. Undefined when
 * it cannot be encoded (a lone surrogate).
 */
export function safeHeaderValue(value: string): string | undefined {
  if (/^[\x20-\x7e]*$/.test(value)) return value;
  try {
    return value.replace(/[^\x20-\x24\x26-\x7e]+/g, (run) => encodeURIComponent(run));
  } catch {
    return undefined;
  }
}

const memo = new WeakMap<Identity, ReadonlyArray<readonly [string, string]>>();

/**
 * The identity headers for `identity`, as name/value pairs: subject, user
 * (user tokens only), effective groups (comma-separated), client, scope and
 * audience (space-separated) and the token expiry (epoch seconds). Values
 * that are empty or cannot be made safe are left out. Computed once per
 * identity object (identities are immutable and cached with their token).
 */
export function identityHeaders(identity: Identity): ReadonlyArray<readonly [string, string]> {
  let headers = memo.get(identity);
  if (headers) return headers;
  const values: Array<string | undefined> = [
    identity.subject,
    identity.username,
    identity.effectiveGroups.join(','),
    identity.clientId,
    identity.scopes.join(' '),
    identity.audience.join(' '),
    String(identity.expiresAt),
  ];
  const out: Array<readonly [string, string]> = [];
  values.forEach((value, i) => {
    const safe = value ? safeHeaderValue(value) : undefined;
    if (safe) out.push([IDENTITY_HEADER_NAMES[i]!, safe]);
  });
  headers = out;
  memo.set(identity, headers);
  return headers;
}

const allowedMemo = new WeakMap<Identity, string[]>();

/**
 * The whole header list of an empty `200` answer carrying the identity, flat
 * (name, value, name, value...) as `res.writeHead` takes it: computed once
 * per identity. Writing it in one call is the decision endpoint's hot path;
 * setting the headers one by one cost about a fifth of its rate.
 */
export function allowedResponseHeaders(identity: Identity): string[] {
  let flat = allowedMemo.get(identity);
  if (flat) return flat;
  flat = ['Cache-Control', 'no-store', 'Content-Length', '0'];
  for (const [name, value] of identityHeaders(identity)) flat.push(name, value);
  allowedMemo.set(identity, flat);
  return flat;
}
