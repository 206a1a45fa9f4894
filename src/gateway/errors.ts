/**
 * The gateway's refusals. Each class is named after the error code it puts
 * on the wire and always answers with the same HTTP status; `sendError`
 * writes one (through the one error writer, src/http/error-response.ts) as a JSON
 * body `{error, error_description}` plus, for 401 and 403, the RFC 6750 §3 /
 * RFC 9449 §7.1 challenge.
 *
 * Descriptions are fixed texts chosen by the gateway: they never contain a
 * token, a proof or a header value the client sent.
 */
import type { Context } from 'koa';
import { FedgateError } from '../util/errors.ts';
import { respondWithError } from '../http/error-response.ts';
import { isStoreUnavailable } from '../store/errors.ts';

/** The realm in every challenge. */
export const REALM = 'fedgate';
/** DPoP proof algorithms advertised in the DPoP challenge (RFC 9449 §7.1): those fedgate binds tokens to. */
export const DPOP_CHALLENGE_ALGS = 'ES256 EdDSA';

/** The authentication scheme a challenge is written for. */
export type ChallengeScheme = 'Bearer' | 'DPoP';

/** A refusal with a stable status and wire code; its message is a fixed text, always shown. */
export abstract class GatewayError extends FedgateError {
  abstract override readonly status: number;
  /** The OAuth-style error code of the JSON body (and of the challenge, for 401). */
  abstract override readonly error: string;
  /** The challenge scheme of a 401/403 answer; authenticate() sets it from the request's scheme. */
  scheme: ChallengeScheme = 'Bearer';
  /** RFC 9728 §5.1: where the protected resource's metadata is, for the challenge (`/api/<name>` sets it). */
  resourceMetadata: string | undefined;

  constructor(description: string) {
    // The subclass's fields set the code and status; 502-504 name the upstream's failure in fixed words too.
    super('', description, { expose: true });
  }

  /** The RFC 6750 §3 / RFC 9449 §7.1 challenge, computed when answered (scheme and metadata are set late). */
  override headers(): Readonly<Record<string, string>> | undefined {
    const challenge = challengeFor(this);
    return challenge ? { 'WWW-Authenticate': challenge } : undefined;
  }
}

/** 401 without an error code: the request carried no credentials at all (RFC 6750 §3.1). */
export class Unauthorized extends GatewayError {
  readonly status = 401;
  readonly error = 'unauthorized';
}

/** 400 (RFC 6750 §3.1): malformed Authorization header or request target, missing parameters. */
export class InvalidRequest extends GatewayError {
  readonly status = 400;
  readonly error = 'invalid_request';
}

/** 401 (RFC 6750 §3.1): expired, revoked, malformed or otherwise unacceptable access token. */
export class InvalidToken extends GatewayError {
  readonly status = 401;
  readonly error = 'invalid_token';
}

/** 401 (RFC 9449 §7.1): the DPoP proof fails the §4.3 checks: it is missing, malformed, replayed or not for this request. */
export class InvalidDpopProof extends GatewayError {
  readonly status = 401;
  readonly error = 'invalid_dpop_proof';
}

/** 403: the policy does not allow the request. `scope` lists scopes that would have allowed it (RFC 6750 §3.1 insufficient_scope). */
export class AccessDenied extends GatewayError {
  readonly status = 403;
  readonly error = 'access_denied';
  readonly scope: readonly string[] | undefined;

  constructor(description: string, scope?: readonly string[]) {
    super(description);
    this.scope = scope?.length ? scope : undefined;
  }
}

/** 404: no such service (or it has no upstream). */
export class NotFound extends GatewayError {
  readonly status = 404;
  readonly error = 'not_found';
}

/** 413: the request body is larger than `gateway.maxBodyBytes`. */
export class PayloadTooLarge extends GatewayError {
  readonly status = 413;
  readonly error = 'payload_too_large';
}

/** 414: the request target is longer than the gateway accepts. */
export class UriTooLong extends GatewayError {
  readonly status = 414;
  readonly error = 'uri_too_long';
}

/** 502: the upstream refused or dropped the connection, or could not be resolved. */
export class BadGateway extends GatewayError {
  readonly status = 502;
  readonly error = 'bad_gateway';
}

/** 503: the store needed to check the token could not be reached. */
export class TemporarilyUnavailable extends GatewayError {
  readonly status = 503;
  readonly error = 'temporarily_unavailable';
}

/**
 * The error for a failed store call: the store's own StoreUnavailable as it
 * is (fedgate answers it with 503 and Retry-After in one place,
 * src/http/unavailable.ts), anything else as a TemporarilyUnavailable.
 */
export function unavailable(err: unknown, description: string): Error {
  return isStoreUnavailable(err) ? err as Error : new TemporarilyUnavailable(description);
}

/** 504: the upstream did not answer within the service's timeout. */
export class GatewayTimeout extends GatewayError {
  readonly status = 504;
  readonly error = 'gateway_timeout';
}

/** A quoted-string parameter value (RFC 9110 §5.6.4) of visible ASCII only. */
function quoted(value: string): string {
  return `"${value.replace(/[^\x20-\x7e]/g, '').replace(/["\\]/g, "'")}"`;
}

/** The WWW-Authenticate value for a refusal, or undefined when it needs none. */
export function challengeFor(err: GatewayError): string | undefined {
  if (err.status !== 401 && !(err instanceof AccessDenied && err.scope)) return undefined;
  const params = [`realm=${quoted(REALM)}`];
  if (err.scheme === 'DPoP') params.push(`algs=${quoted(DPOP_CHALLENGE_ALGS)}`);
  if (err instanceof AccessDenied) {
    params.push(`error="insufficient_scope"`, `scope=${quoted(err.scope!.join(' '))}`);
  } else if (!(err instanceof Unauthorized)) {
    // RFC 6750 §3.1: a request without credentials gets no error code.
    params.push(`error=${quoted(err.error)}`, `error_description=${quoted(err.description)}`);
  }
  if (err.resourceMetadata) params.push(`resource_metadata=${quoted(err.resourceMetadata)}`);
  return `${err.scheme} ${params.join(', ')}`;
}

/** Writes a refusal: status, challenge, `Cache-Control: no-store` and the JSON body. */
export function sendError(ctx: Context, err: GatewayError): void {
  respondWithError(ctx, err, { format: 'json' });
}
