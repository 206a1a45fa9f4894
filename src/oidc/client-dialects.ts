/**
 * What the research community's standard clients send, in the form
 * oidc-provider understands.
 *
 * - **Public clients with an empty secret.** oidc-agent (and other libcurl
 *   based clients) always send `Authorization: Basic base64("<id>:")`, also
 *   for a public client. For a client registered with the authentication
 *   method `none`, such a header is no client authentication at all: it is
 *   dropped and the client id is passed as `client_id` (RFC 6749 §2.3.1
 *   leaves the empty password to the server; Keycloak and INDIGO IAM accept
 *   it for public clients). For every other client the header stays, and
 *   oidc-provider refuses it as before.
 * - **`audience` as the resource indicator.** INDIGO IAM and the WLCG
 *   tooling (oidc-agent `--aud`) name the target service with `audience`
 *   (space-separated). On every grant and authorization request it is read
 *   as RFC 8707 `resource`; when both are given they must name the same
 *   servers, else `invalid_target`. Token exchange is left alone: RFC 8693
 *   defines `audience` itself, and its handler reads both.
 *
 * oidc-provider has no hook in front of its parameter parsing, so this runs
 * as `provider.use()` middleware and rewrites the request it will read.
 */
import type { Context, Next } from 'koa';
import { parse, stringify, type ParsedUrlQuery } from 'node:querystring';
import type Provider from 'oidc-provider';
import { hasFormBody, readFormBody, handOnFormBody } from '../http/form-body.ts';
import { respondWithError } from '../http/error-response.ts';
import { FedgateError } from '../util/errors.ts';
import type { Logger } from '../observability/logger.ts';
import { TOKEN_EXCHANGE_GRANT } from '../grants/token-types.ts';
import type { ResourceServers } from '../resource-servers/resource-servers.ts';
import { tokenRequestView, withTokenRequestView } from './token-request-view.ts';

/** The client id of an `Authorization: Basic` header with an empty secret, else undefined. */
export function emptySecretBasicClientId(header: string | undefined): string | undefined {
  if (!header || header.length > 4096) return undefined;
  const [scheme, value, ...rest] = header.split(' ');
  if (rest.length || scheme?.toLowerCase() !== 'basic' || !value) return undefined;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  // Only the exact form `<id>:`; anything else is oidc-provider's to judge.
  if (colon <= 0 || colon !== decoded.length - 1) return undefined;
  try {
    // RFC 6749 §2.3.1: the id is form-encoded inside the header.
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

/** A token request body that redeems a grant (refresh token, device code, code): what a token request view may concern. */
const REDEEMS_GRANT = /(?:^|&)grant_type=(?:refresh_token|authorization_code|urn(?::|%3A)ietf(?::|%3A)params(?::|%3A)oauth(?::|%3A)grant-type(?::|%3A)device_code)(?:&|$)/i;

const values = (value: string | string[] | undefined): string[] =>
  (Array.isArray(value) ? value : value === undefined ? [] : [value]);

/**
 * Moves `audience` to `resource` in `params` (in place). Answers an error
 * description when the two are both given and disagree.
 */
export function audienceAsResource(params: ParsedUrlQuery): { changed: boolean; error?: string } {
  if (params.audience === undefined) return { changed: false };
  const audiences = [...new Set(values(params.audience).flatMap((a) => a.split(' ')).filter(Boolean))];
  const resources = [...new Set(values(params.resource).filter(Boolean))];
  delete params.audience;
  if (!audiences.length) return { changed: true };
  if (resources.length) {
    const same = audiences.length === resources.length && audiences.every((a) => resources.includes(a));
    return same ? { changed: true } : { changed: true, error: 'audience and resource name different resource servers' };
  }
  params.resource = audiences.length === 1 ? audiences[0]! : audiences;
  return { changed: true };
}

/** The middleware, for `provider.use()`. */
export function clientDialects(provider: Provider, { logger, resourceServers }: { logger: Logger; resourceServers: ResourceServers }): (ctx: Context, next: Next) => Promise<void> {
  const token = provider.pathFor('token');
  const authorization = provider.pathFor('authorization');
  // Endpoints where clients authenticate, and those that take a resource indicator.
  const authenticating = new Set(['token', 'device_authorization', 'pushed_authorization_request', 'introspection', 'revocation'].map((r) => provider.pathFor(r)));
  const targeting = new Set([token, authorization, provider.pathFor('device_authorization'), provider.pathFor('pushed_authorization_request')]);

  // A service asks for token after token with the same Authorization header: its answer is kept (a pure function of the header).
  let lastHeader: string | undefined;
  let lastClientId: string | undefined;
  const emptySecretClientIdOf = (header: string | undefined) => {
    if (header === undefined) return undefined;
    if (header !== lastHeader) {
      lastClientId = emptySecretBasicClientId(header);
      lastHeader = header;
    }
    return lastClientId;
  };

  const refuse = (ctx: Context, description: string) => {
    logger.info({ requestId: ctx.state.requestId, path: ctx.path, error: 'invalid_target', error_description: description }, 'request refused');
    // At the authorization endpoint the redirect URI is not checked yet: the error is shown, not sent to it (RFC 6749 §4.1.2.1).
    respondWithError(ctx, new FedgateError('invalid_target', description, { status: 400 }), { format: ctx.path === authorization ? 'page' : 'json' });
  };

  const rewriteBody = async (ctx: Context, next: Next, publicCandidate: string | undefined): Promise<void> => {
    const body = await readFormBody(ctx);
    if (body === null) return;
    if (body === undefined) return next();
    // Most requests name no audience, redeem no grant (client credentials) and come from no public
    // client: their bytes go on untouched, unparsed.
    const isToken = ctx.path === token;
    if (publicCandidate === undefined && !body.includes('audience') && !(isToken && REDEEMS_GRANT.test(body.toString('latin1')))) {
      handOnFormBody(ctx, body);
      return next();
    }
    const params = parse(body.toString('utf8'));
    let changed = false;
    if (publicCandidate !== undefined && (params.client_id === undefined || params.client_id === publicCandidate)) {
      const client = await provider.Client.find(publicCandidate).catch(() => undefined);
      if (client?.clientAuthMethod === 'none') {
        delete ctx.req.headers.authorization;
        params.client_id = publicCandidate;
        changed = true;
      }
    }
    if (targeting.has(ctx.path) && !(ctx.path === token && params.grant_type === TOKEN_EXCHANGE_GRANT)) {
      const moved = audienceAsResource(params);
      if (moved.error) return refuse(ctx, moved.error);
      changed ||= moved.changed;
    }
    handOnFormBody(ctx, changed ? Buffer.from(stringify(params), 'utf8') : body);
    if (!isToken) return next();
    const { view, error } = await tokenRequestView(provider, resourceServers, params);
    if (error) return refuse(ctx, error);
    return view ? withTokenRequestView(view, next) : next();
  };

  return (ctx, next) => {
    if (ctx.path === authorization && ctx.method === 'GET') {
      if (!ctx.querystring.includes('audience')) return next();
      const params = parse(ctx.querystring);
      const moved = audienceAsResource(params);
      if (moved.error) {
        refuse(ctx, moved.error);
        return Promise.resolve();
      }
      if (moved.changed) ctx.querystring = stringify(params);
      return next();
    }
    const path = ctx.path;
    const authenticates = authenticating.has(path);
    if (!authenticates && !targeting.has(path)) return next();
    if (!hasFormBody(ctx)) return next();
    const publicCandidate = authenticates ? emptySecretClientIdOf(ctx.headers.authorization) : undefined;
    if (publicCandidate === undefined && !targeting.has(path)) return next();
    return rewriteBody(ctx, next, publicCandidate);
  };
}
