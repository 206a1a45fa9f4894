/**
 * Request target parsing for policy decisions.
 *
 * The path a policy is decided on must be the path the upstream will serve,
 * or a crafted target gets one decided and another served. Rather than
 * normalising ambiguous forms (as nginx, Envoy and application frameworks
 * each do differently), the gateway refuses them: dot segments, empty
 * segments, encoded slashes and backslashes, control characters and broken
 * percent-encoding are all a 400, so what is decided and what is forwarded
 * cannot differ.
 */
import { InvalidRequest, UriTooLong } from './errors.ts';

/** The longest request target accepted (bytes of the raw target). */
export const MAX_TARGET_LENGTH = 8 * 1024;

/** A request target that passed the checks. */
export interface RequestTarget {
  /** The path exactly as received, for forwarding (`/store/caf%C3%A9/`). */
  rawPath: string;
  /** The percent-decoded path without trailing slash (except `/` itself), for the policy (`/store/café`). */
  path: string;
  /** The raw query string without `?`; empty when there was none. */
  query: string;
}

// Raw characters refused anywhere in the target: controls, space, DEL,
// non-ASCII (a target is ASCII on the wire, RFC 9112 §3.2), backslash
// (treated as a separator by some servers) and `#` (no fragment in a request).
const FORBIDDEN_RAW = /[\x00-\x20\x7f-\uffff\\#]/;
// After decoding a segment: slash and backslash (a segment must stay one
// segment) and control characters (%00, %0a...).
const FORBIDDEN_DECODED = /[\x00-\x1f\x7f/\\]/;
const PERCENT = /%(?![0-9A-Fa-f]{2})/;

/**
 * Checks and decodes an origin-form request target (RFC 9112 §3.2.1), as in
 * the request line or nginx's `X-Original-URI`.
 *
 * @throws UriTooLong above {@link MAX_TARGET_LENGTH}.
 * @throws InvalidRequest for anything that is not a plain absolute path:
 *   not starting with `/`, `.`/`..` segments (raw or encoded), empty
 *   segments, `%2F`/`%5C`, backslash, control characters (raw or encoded),
 *   non-ASCII, malformed percent-encoding in the path or invalid UTF-8.
 */
export function parseRequestTarget(target: string): RequestTarget {
  if (target.length > MAX_TARGET_LENGTH) throw new UriTooLong('the request target is too long');
  if (target.charCodeAt(0) !== 0x2f) throw new InvalidRequest('the request target must be an absolute path');
  if (FORBIDDEN_RAW.test(target)) throw new InvalidRequest('the request target contains characters that are not allowed');
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q + 1);
  // The query is forwarded as it came and never decided on: only the path must decode cleanly.
  if (PERCENT.test(rawPath)) throw new InvalidRequest('the request target has malformed percent-encoding');
  if (rawPath === '/') return { rawPath, path: '/', query };

  // The fast path: nothing encoded, so the raw segments are the decoded ones.
  const encoded = rawPath.includes('%');
  const segments = rawPath.split('/');
  const decoded: string[] = [];
  const last = segments.length - 1;
  for (let i = 1; i <= last; i += 1) {
    const raw = segments[i]!;
    if (raw === '') {
      // A trailing slash is kept for forwarding, and left off for the policy.
      if (i === last) break;
      throw new InvalidRequest('the request target has an empty path segment');
    }
    let segment = raw;
    if (encoded && raw.includes('%')) {
      try {
        segment = decodeURIComponent(raw);
      } catch {
        throw new InvalidRequest('the request target is not valid UTF-8 once decoded');
      }
      if (FORBIDDEN_DECODED.test(segment)) throw new InvalidRequest('the request target encodes a slash, backslash or control character');
    }
    if (segment === '.' || segment === '..') throw new InvalidRequest('the request target has a dot segment');
    decoded.push(segment);
  }
  return { rawPath, path: `/${decoded.join('/')}`, query };
}
