import { absentUnlessUnavailable } from '../store/errors.ts';
import { createHash, randomBytes } from 'node:crypto';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { effectiveGroups, type Accounts, type LinkedIdentity } from '../accounts/accounts.ts';
import type { Config } from '../config/schema.ts';
import type { FederationHooks } from '../federation/types.ts';
import { csrfMatches, csrfToken } from '../http/csrf.ts';
import { PageError, respondWithError } from '../http/errors.ts';
import { sendPage } from '../http/page.ts';
import type { Audit } from '../observability/audit.ts';
import { ACCOUNT_CLIENT_ID } from '../oidc/provider.ts';
import * as pages from '../views/pages.ts';

export interface AccountRoutesDeps {
  config: Config;
  accounts: Accounts;
  audit: Audit;
  hooks: FederationHooks;
  provider: () => Provider;
  /** Links that start linking another identity (from the identity bridges). */
  linkOptions: () => Array<{ href: string; label: string }>;
}

const CSRF_COOKIE = 'fedgate.account-csrf';
const STATE_COOKIE = 'fedgate.account-state';

/**
 * `/account`: the signed-in user's own page: groups, linked identities,
 * linking another (through the identity bridges) and unlinking. Signing in
 * goes through fedgate's own authorization endpoint with the built-in
 * account client, so every way of signing in works here too.
 */
export function accountRoutes(deps: AccountRoutesDeps): Router {
  const { config, accounts, audit, hooks } = deps;
  const secure = new URL(config.issuer).protocol === 'https:';
  const router = new Router({ prefix: '/account' });
  const form = bodyParser({ enableTypes: ['form'], formLimit: '16kb', encoding: 'utf-8' });
  const callback = `${config.issuer}/account/callback`;
  const error = (ctx: Context, status: number, description: string) =>
    respondWithError(ctx, new PageError(status, 'invalid_request', description), { format: 'page' });

  router.get('/', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const account = await hooks.currentAccount(ctx);
    if (!account) {
      // Sign in first: an authorization request of the account client (PKCE, state in a cookie of this path).
      const state = randomBytes(24).toString('base64url');
      const verifier = randomBytes(32).toString('base64url');
      ctx.cookies.set(STATE_COOKIE, `${state}.${verifier}`, { httpOnly: true, sameSite: 'lax', secure, path: '/account', signed: true, overwrite: true });
      const url = new URL(`${config.issuer}/auth`);
      url.search = new URLSearchParams({
        client_id: ACCOUNT_CLIENT_ID, response_type: 'code', scope: 'openid', redirect_uri: callback, state,
        code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
      }).toString();
      return ctx.redirect(url.href);
    }
    const notice = ({ linked: 'The identity is now linked to your account.', unlinked: 'The identity was unlinked.' } as Record<string, string>)[String(ctx.query.notice ?? '')];
    sendPage(ctx, (nonce) => pages.accountPage({
      nonce,
      csrfToken: csrfToken(ctx, { cookie: CSRF_COOKIE, path: '/account', secure }),
      username: account.username,
      name: account.name,
      groups: effectiveGroups(account.groups),
      identities: account.identities,
      unlinkAction: '/account/unlink',
      linkOptions: deps.linkOptions(),
      notice,
    }));
  });

  router.get('/callback', async (ctx) => {
    const saved = ctx.cookies.get(STATE_COOKIE, { signed: true });
    ctx.cookies.set(STATE_COOKIE, null, { path: '/account' });
    const [state] = (saved ?? '').split('.');
    if (!state || ctx.query.state !== state) return error(ctx, 400, 'The sign-in could not be matched to this browser. Open your account page again.');
    if (typeof ctx.query.error === 'string') return error(ctx, 400, 'The sign-in did not complete.');
    // The sign-in left a session, which is all the page needs: the code is withdrawn at once.
    const code = typeof ctx.query.code === 'string' ? await deps.provider().AuthorizationCode.find(ctx.query.code).catch(absentUnlessUnavailable) : undefined;
    await code?.destroy();
    ctx.redirect('/account');
  });

  router.post('/unlink', form, async (ctx) => {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    if (!csrfMatches(ctx, CSRF_COOKIE, body.csrf)) return error(ctx, 403, 'The form expired or was not sent from this site. Open your account page again.');
    const account = await hooks.currentAccount(ctx);
    if (!account) return error(ctx, 401, 'You are not signed in. Open your account page again.');
    const type = body.type === 'saml' || body.type === 'x509' ? body.type : undefined;
    const identity = account.identities.find((i) => i.type === type && i.issuer === body.issuer && i.subject === body.subject);
    if (!identity) return error(ctx, 400, 'That identity is not linked to your account.');
    const linked: Pick<LinkedIdentity, 'type' | 'issuer' | 'subject'> = { type: identity.type, issuer: identity.issuer, subject: identity.subject };
    await accounts.unlink(account.id, linked);
    await audit.record({ type: 'identity.unlinked', actor: account.id, outcome: 'success', ip: ctx.ip, target: account.id, detail: linked });
    ctx.status = 303;
    ctx.redirect('/account?notice=unlinked');
  });

  return router;
}
