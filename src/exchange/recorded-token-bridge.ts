/**
 * Introspection and revocation of recorded JWT access tokens (the ones
 * token exchange issues, src/grants/grants.ts `recordJwtAccessToken`).
 *
 * oidc-provider refuses any JWT at its introspection and revocation
 * endpoints before looking it up (structured tokens are meant to be checked
 * by their signature). An exchanged token must nevertheless be introspectable
 * by its resource server and revocable (RFC 8693 §2.2, RFC 7662, RFC 7009),
 * so this middleware, in front of those two endpoints only, replaces such a
 * token in the request by its record id. Client authentication, policies and
 * the response stay oidc-provider's. No library does this; it is written here.
 */
import { decodeJwt } from 'jose';
import type { Context, Next } from 'koa';
import { parse, stringify } from 'node:querystring';
import { hasFormBody, readFormBody, handOnFormBody } from '../http/form-body.ts';
import { jwtRecordId } from '../grants/grants.ts';
import { isCompactJws } from '../tokens/own-tokens.ts';

/** A request body `token` that names a recorded (exchanged) JWT access token, else undefined. */
function recordedToken(value: unknown): string | undefined {
  if (typeof value !== 'string' || !isCompactJws(value)) return undefined;
  try {
    return decodeJwt(value).exchanged === true ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The middleware, for `provider.use()`: acts on POSTs to `paths` only. */
export function recordedTokenBridge(paths: readonly string[]): (ctx: Context, next: Next) => Promise<void> {
  const wanted = new Set(paths);
  // Every request to oidc-provider passes here: those it leaves alone go on without an async frame of their own.
  return (ctx, next) => {
    if (!wanted.has(ctx.path) || !hasFormBody(ctx)) return next();
    return bridge(ctx, next);
  };
}

/** Reads the form body, swaps a recorded JWT for its record id, and hands the body on to oidc-provider. */
async function bridge(ctx: Context, next: Next): Promise<void> {
  let body = await readFormBody(ctx);
  if (body === null) return;
  if (body === undefined) return next();
  const params = parse(body.toString('utf8'));
  const token = recordedToken(params.token);
  if (token) {
    params.token = jwtRecordId(token);
    body = Buffer.from(stringify(params), 'utf8');
  }
  handOnFormBody(ctx, body);
  return next();
}
