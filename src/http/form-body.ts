/**
 * Reading a form body ahead of oidc-provider, and handing it on.
 *
 * oidc-provider parses request bodies itself in each endpoint's middleware,
 * and offers no hook in front of that parsing. The few places where fedgate
 * has to look at, or rewrite, a request before oidc-provider does (recorded
 * JWTs at introspection, the dialects of standard clients) read the stream
 * here and hand the bytes on as `ctx.request.body`, which oidc-provider reads
 * when the stream has already been consumed (lib/shared/selective_body.js:
 * "resolving to use req.body or request.body instead"; it prints that warning
 * once per process). No library does this for oidc-provider; it is written here.
 */
import type { Context } from 'koa';

const FORM_TYPE = 'application/x-www-form-urlencoded';

/** oidc-provider's own body limit (lib/shared/selective_body.js). */
export const FORM_BODY_LIMIT = 56 * 1024;

/** The body an earlier step read and handed on, if any. */
function handedOn(ctx: Context): Buffer | undefined {
  const body = (ctx.request as { body?: unknown }).body;
  return body instanceof Buffer ? body : undefined;
}

/**
 * Whether the request carries a form body that can be read here: not read
 * yet, or read and handed on by an earlier step ({@link handOnFormBody}).
 */
export function hasFormBody(ctx: Context): boolean {
  if (ctx.method !== 'POST') return false;
  // The exact type (what clients send) needs no parsing of the header; anything else is type-is's to judge.
  const type = ctx.req.headers['content-type'];
  if (type !== FORM_TYPE && !ctx.is(FORM_TYPE)) return false;
  return ctx.req.readable || handedOn(ctx) !== undefined;
}

/**
 * Reads the request body, up to {@link FORM_BODY_LIMIT}. A declared length
 * over the limit leaves the stream unread and answers undefined
 * (oidc-provider refuses such a body itself); a body that turns out larger
 * while reading is answered here with oidc-provider's error, and null
 * returned: the caller must not go on.
 */
export async function readFormBody(ctx: Context): Promise<Buffer | null | undefined> {
  const handed = handedOn(ctx);
  if (handed) return handed;
  const length = ctx.request.length;
  if (length !== undefined && length > FORM_BODY_LIMIT) return undefined;
  // 'data' events rather than the stream's async iterator: this runs on every token request,
  // and the iterator's machinery cost more than the parsing itself.
  const body = await new Promise<Buffer | null>((resolve, reject) => {
    const req = ctx.req;
    const chunks: Buffer[] = [];
    let received = 0;
    const done = (value: Buffer | null) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > FORM_BODY_LIMIT) {
        req.pause();
        done(null);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => done(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
    const onError = (err: Error) => {
      req.off('data', onData);
      req.off('end', onEnd);
      reject(err);
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
  });
  if (body === null) refuseOversizedBody(ctx);
  return body;
}

/** The answer oidc-provider gives to a body it cannot parse, for one this module stopped reading. */
function refuseOversizedBody(ctx: Context): void {
  ctx.status = 400;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: 'invalid_request', error_description: 'failed to parse the request body' };
}

/**
 * Hands `body` on as the request's whole body: oidc-provider (and a later
 * {@link readFormBody}) read it from `ctx.request.body`, the stream being consumed.
 */
export function handOnFormBody(ctx: Context, body: Buffer): void {
  (ctx.request as { body?: unknown }).body = body;
}
