/**
 * `/admin`: the console. Server-rendered pages that sign in through
 * fedgate's own authorization endpoint with the built-in public client
 * `fedgate-console` (code + PKCE S256), obtain an admin API token
 * (`fedgate.admin`, audience `<issuer>/admin/api`) and do every read and
 * change through the admin API over HTTP, so the API's rules and audit
 * apply to the console exactly as to any other caller.
 */
import { createHash, randomBytes } from 'node:crypto';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context } from 'koa';
import type { Config } from '../config/schema.ts';
import { sendPage } from '../http/page.ts';
import type { Logger } from '../observability/logger.ts';
import { html } from '../views/html.ts';
import { AdminApiError, AdminClient } from './admin-client.ts';
import { createKit } from './kit.ts';
import { consoleLayout } from './layout.ts';
import { accountSection } from './sections/accounts.ts';
import { auditSection } from './sections/audit.ts';
import { clientSection } from './sections/clients.ts';
import { dataSourceSection } from './sections/datasources.ts';
import { groupSection } from './sections/groups.ts';
import { overviewSection } from './sections/overview.ts';
import { policySection } from './sections/policies.ts';
import { requestSection } from './sections/requests.ts';
import { ConsoleSessions, csrfValid, type SessionStore } from './session.ts';
import { ADMIN_SCOPE, CONSOLE_CLIENT_ID } from '../config/names.ts';

export interface ConsoleDeps {
  config: Config;
  /** fedgate's store (sessions live there, so any replica serves the next request). */
  store: SessionStore;
  logger: Logger;
}

const STATE_COOKIE = 'fedgate.console-state';

/** What the admin API's `GET /me` says about the caller. */
interface Me {
  username: string;
  admin: boolean;
  manages: string[];
}

/** A path inside the console to come back to after signing in (never elsewhere). */
function returnPath(value: string | undefined): string {
  return value && /^\/admin(?:[/?][^\\\s]*)?$/.test(value) && !value.startsWith('/admin/api') && !value.startsWith('/admin/callback') ? value : '/admin';
}

export function consoleRoutes(deps: ConsoleDeps): Router {
  const { config, logger } = deps;
  const secure = new URL(config.issuer).protocol === 'https:';
  // The admin API's URL, which is also its audience (the resource the console's token is asked for).
  const apiBase = `${config.issuer}/admin/api`;
  const callback = `${config.issuer}/admin/callback`;
  const sessions = new ConsoleSessions(deps.store, secure);
  const router = new Router({ prefix: '/admin' });
  const form = bodyParser({ enableTypes: ['form'], formLimit: '2mb', encoding: 'utf-8' });

  const plainPage = (ctx: Context, status: number, title: string, message: ReturnType<typeof html>) =>
    sendPage(ctx, (nonce) => consoleLayout({ nonce, title, body: html`<h1>${title}</h1>${message}` }), status);

  /** An authorization request of the console client; state, verifier and where to return in a signed cookie of /admin. */
  const signIn = (ctx: Context) => {
    const state = randomBytes(24).toString('base64url');
    const verifier = randomBytes(32).toString('base64url');
    const back = Buffer.from(returnPath(ctx.originalUrl)).toString('base64url');
    ctx.cookies.set(STATE_COOKIE, `${state}.${verifier}.${back}`, { httpOnly: true, sameSite: 'lax', secure, path: '/admin', signed: true, overwrite: true, maxAge: 3600_000 });
    const url = new URL(`${config.issuer}/auth`);
    url.search = new URLSearchParams({
      client_id: CONSOLE_CLIENT_ID, response_type: 'code', scope: `openid profile ${ADMIN_SCOPE}`, resource: apiBase,
      redirect_uri: callback, state, code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    }).toString();
    ctx.set('Cache-Control', 'no-store');
    ctx.redirect(url.href);
  };

  const kit = createKit({ apiBase, sessions, form, signIn });

  const refusal = (ctx: Context, who: string | undefined) => plainPage(ctx, 403, 'No access to the console', html`<div role="alert">
<p>The fedgate console is for administrators (members of <code>/admins</code>) and group managers.${who ? html` You are signed in as <strong>${who}</strong>, which is neither.` : ''}</p></div>
<p>You can still manage your own account, request to join a group, and see your requests on <a href="/account">your account page</a>.</p>`);

  router.get('/callback', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const saved = ctx.cookies.get(STATE_COOKIE, { signed: true });
    ctx.cookies.set(STATE_COOKIE, null, { path: '/admin', secure, overwrite: true });
    const [state, verifier, back] = (saved ?? '').split('.');
    if (!state || !verifier || ctx.query.state !== state) {
      return plainPage(ctx, 400, 'Sign-in not recognised', html`<div role="alert"><p>The sign-in could not be matched to this browser.</p></div><p><a href="/admin">Open the console again</a>.</p>`);
    }
    if (typeof ctx.query.error === 'string' || typeof ctx.query.code !== 'string') {
      return plainPage(ctx, 400, 'Sign-in not completed', html`<div role="alert"><p>The sign-in did not complete${typeof ctx.query.error === 'string' ? html` (<code>${ctx.query.error}</code>)` : ''}.</p></div><p><a href="/admin">Try again</a>.</p>`);
    }
    // The code is redeemed at fedgate's own token endpoint, over HTTP, like any client would.
    const res = await fetch(`${config.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code: ctx.query.code, redirect_uri: callback, client_id: CONSOLE_CLIENT_ID, code_verifier: verifier, resource: apiBase }),
      signal: AbortSignal.timeout(15_000),
    });
    const tokens = await res.json().catch(() => ({})) as { access_token?: string; expires_in?: number; scope?: string; id_token?: string; error?: string };
    if (!res.ok || !tokens.access_token) {
      logger.info({ status: res.status, error: tokens.error }, 'console sign-in: the token request was refused');
      return plainPage(ctx, 400, 'Sign-in not completed', html`<div role="alert"><p>fedgate did not issue the console's token${tokens.error ? html` (<code>${tokens.error}</code>)` : ''}.</p></div><p><a href="/admin">Try again</a>.</p>`);
    }
    // The ID token came straight from the token endpoint of this issuer (OIDC Core §3.1.3.7: TLS stands in for its signature).
    const claims = idTokenClaims(tokens.id_token);
    const who = claims.preferred_username ?? claims.sub;
    if (!(tokens.scope ?? '').split(' ').includes(ADMIN_SCOPE)) return refusal(ctx, who);
    let me: Me | undefined;
    try {
      me = await whoAmI(new AdminClient(apiBase, tokens.access_token), who ?? '');
    } catch (err) {
      if (err instanceof AdminApiError && (err.status === 401 || err.status === 403)) return refusal(ctx, who);
      throw err;
    }
    if (!me.admin && me.manages.length === 0) return refusal(ctx, me.username || who);
    await sessions.start(ctx, {
      accessToken: tokens.access_token,
      expiresAt: Math.floor(Date.now() / 1000) + (tokens.expires_in ?? 300),
      username: me.username, admin: me.admin, manages: me.manages,
    });
    ctx.status = 303;
    ctx.redirect(returnPath(back ? Buffer.from(back, 'base64url').toString() : undefined));
  });

  router.post('/signout', form, async (ctx) => {
    const session = await sessions.current(ctx);
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    if (session && csrfValid(session, body.csrf)) {
      await sessions.end(ctx);
      // The admin token is withdrawn too (RFC 7009; a public client revokes its own tokens).
      await fetch(`${config.issuer}/token/revocation`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token: session.accessToken, token_type_hint: 'access_token', client_id: CONSOLE_CLIENT_ID }),
        signal: AbortSignal.timeout(15_000),
      }).then((r) => r.arrayBuffer(), (err: Error) => logger.warn({ err: { message: err.message } }, 'console sign-out: revoking the admin token failed'));
    } else if (session) {
      return plainPage(ctx, 403, 'Form expired', html`<div role="alert"><p>The sign-out form was not sent from this console session.</p></div><p><a href="/admin">Back to the console</a>.</p>`);
    }
    plainPage(ctx, 200, 'Signed out of the console', html`<p>Your console session has ended and its admin token was withdrawn.</p><p><a href="/admin">Sign in again</a> · <a href="/account">Your account</a></p>`);
  });

  overviewSection(router, kit);
  groupSection(router, kit);
  policySection(router, kit);
  dataSourceSection(router, kit);
  clientSection(router, kit);
  accountSection(router, kit);
  auditSection(router, kit);
  requestSection(router, kit);

  return router;
}

/** The claims of an ID token received from the token endpoint (payload only). */
function idTokenClaims(token: string | undefined): { sub?: string; preferred_username?: string } {
  try {
    const payload = JSON.parse(Buffer.from((token ?? '').split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>;
    return {
      ...(typeof payload.sub === 'string' ? { sub: payload.sub } : {}),
      ...(typeof payload.preferred_username === 'string' ? { preferred_username: payload.preferred_username } : {}),
    };
  } catch {
    return {};
  }
}

/** Who the token speaks for: the admin API's `GET /me`. */
async function whoAmI(api: AdminClient, fallbackName: string): Promise<Me> {
  try {
    const me = await api.get<Partial<Me>>('/me');
    return { username: String(me.username ?? fallbackName), admin: me.admin === true, manages: Array.isArray(me.manages) ? me.manages.map(String) : [] };
  } catch (err) {
    // An admin API without /me (before group managers): a token it accepts is an administrator's.
    if (!(err instanceof AdminApiError) || err.error !== 'http_404') throw err;
    await api.get('/audit', { limit: 1 });
    return { username: fallbackName, admin: true, manages: [] };
  }
}
