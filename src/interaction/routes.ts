import { isStoreUnavailable } from '../store/errors.ts';
import { createHash } from 'node:crypto';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { Accounts } from '../accounts/accounts.ts';
import type { Config } from '../config/schema.ts';
import { csrfMatches, csrfToken as csrfCookieToken } from '../http/csrf.ts';
import { takePendingLogin } from '../federation/hooks.ts';
import { aupPending } from '../accounts/aup.ts';
import { PageError as InteractionError } from '../util/errors.ts';
import { errorResponder } from '../http/error-response.ts';
import { sendPage } from '../http/page.ts';
import type { Audit } from '../observability/audit.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { Store } from '../store/store.ts';
import * as pages from '../views/pages.ts';
import { ACCOUNT_CLIENT_ID, ADMIN_SCOPE, AUP_REASON, CONSOLE_CLIENT_ID } from '../config/names.ts';

export interface InteractionDeps {
  config: Config;
  store: Store;
  accounts: Accounts;
  audit: Audit;
  metrics: Metrics;
  /** The current provider (it is rebuilt when signing keys rotate). */
  provider: () => Provider;
  /**
   * Other ways to sign in offered on the login page (identity bridges), and
   * where to go at once when the authorization request names an identity
   * provider (`idp` hint).
   */
  loginOptions?: (uid: string, params: Record<string, unknown>) => { alternatives: Array<{ href: string; label: string }>; redirect?: string | undefined };
}


const CSRF_COOKIE = 'fedgate.csrf';
const SCOPE_DESCRIPTIONS: Record<string, string> = {
  openid: 'Confirm who you are (your account identifier)',
  profile: 'Your name and username',
  email: 'Your email address',
  groups: 'The groups you belong to',
  'wlcg.groups': 'The groups you belong to (WLCG)',
  eduperson_entitlement: 'Your group entitlements (AARC)',
  offline_access: 'Keep access while you are away (refresh token)',
};

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

function checkCsrf(ctx: Context, submitted: unknown): void {
  if (!csrfMatches(ctx, CSRF_COOKIE, submitted)) {
    throw new InteractionError(403, 'invalid_request', 'The form expired or was not sent from this site. Go back to the application and start again.');
  }
}

const throttleKey = (kind: string, value: string) => `login-failures:${kind}:${createHash('sha256').update(value.toLowerCase()).digest('base64url')}`;

/** The login, consent and abort steps of oidc-provider's interactions. */
export function interactionRoutes(deps: InteractionDeps): Router {
  const { config, accounts, audit, metrics, store } = deps;
  const secureCookies = new URL(config.issuer).protocol === 'https:';
  const clientsById = new Map(config.clients.map((c) => [c.clientId, c]));
  const router = new Router({ prefix: '/interaction' });
  const csrfToken = (ctx: Context) => csrfCookieToken(ctx, { cookie: CSRF_COOKIE, path: '/interaction', secure: secureCookies });
  const form = bodyParser({ enableTypes: ['form'], formLimit: '16kb', encoding: 'utf-8' });

  const details = async (ctx: Context): Promise<InteractionDetails> => {
    let found: InteractionDetails;
    try {
      found = await deps.provider().interactionDetails(ctx.req, ctx.res);
    } catch (err) {
      if (isStoreUnavailable(err)) throw err;
      throw new InteractionError(400, 'invalid_request', 'This sign-in request has expired or was opened in another browser. Go back to the application and start again.');
    }
    if (found.uid !== ctx.params.uid) {
      throw new InteractionError(400, 'invalid_request', 'This sign-in request does not match the one in progress. Go back to the application and start again.');
    }
    return found;
  };

  const clientName = async (clientId: string) => {
    const client = await deps.provider().Client.find(clientId);
    return client?.clientName ?? clientId;
  };

  const finish = async (ctx: Context, result: Parameters<Provider['interactionResult']>[2], merge = true) => {
    const returnTo = await deps.provider().interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: merge });
    ctx.status = 303;
    ctx.redirect(returnTo);
  };

  const renderLogin = async (ctx: Context, interaction: InteractionDetails, extra: { username?: string; error?: string } = {}, status = 200) => {
    const name = await clientName(String(interaction.params.client_id));
    const options = deps.loginOptions?.(interaction.uid, interaction.params);
    sendPage(ctx, (nonce) => pages.loginPage({
      nonce,
      action: `/interaction/${interaction.uid}/login`,
      abortAction: `/interaction/${interaction.uid}/abort`,
      csrfToken: csrfToken(ctx),
      clientName: name,
      alternatives: options?.alternatives ?? [],
      ...(config.registration.accounts.enabled ? { registerHref: '/account/register' } : {}),
      ...extra,
    }), status);
  };

  /** Grants everything the consent prompt asks for, on the existing grant or a new one. */
  const grantConsent = async (interaction: InteractionDetails) => {
    const provider = deps.provider();
    const { prompt: { details: missing }, params, session, grantId } = interaction;
    // An earlier grant may have expired or been revoked since the interaction began: start a new one then.
    const existing = grantId ? await provider.Grant.find(grantId) : undefined;
    const grant = existing ?? new provider.Grant({ accountId: session!.accountId, clientId: String(params.client_id) });
    if (Array.isArray(missing.missingOIDCScope)) grant.addOIDCScope((missing.missingOIDCScope as string[]).join(' '));
    if (Array.isArray(missing.missingOIDCClaims)) grant.addOIDCClaims(missing.missingOIDCClaims as string[]);
    const resourceScopes = missing.missingResourceScopes as Record<string, string[]> | undefined;
    if (resourceScopes) for (const [indicator, scopes] of Object.entries(resourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
    return grant.save();
  };

  // Refusals (InteractionError) and unreadable requests are error pages; anything else goes on to the app's boundary.
  router.use(errorResponder({ format: 'page', unreadable: 'The request could not be read.' }));

  router.get('/:uid', async (ctx) => {
    const interaction = await details(ctx);
    ctx.set('Cache-Control', 'no-store');
    if (interaction.prompt.name === 'login') {
      const redirect = deps.loginOptions?.(interaction.uid, interaction.params).redirect;
      if (redirect) return ctx.redirect(redirect);
      return renderLogin(ctx, interaction);
    }
    if (interaction.prompt.name === 'consent') {
      const clientId = String(interaction.params.client_id);
      const account = await accounts.findById(interaction.session!.accountId);
      if (config.aup && account && aupPending(account, config.aup)) {
        return sendPage(ctx, (nonce) => pages.aupPage({
          nonce, action: `/interaction/${interaction.uid}/aup`, abortAction: `/interaction/${interaction.uid}/abort`, csrfToken: csrfToken(ctx),
          version: config.aup!.version, text: config.aup!.text, url: config.aup!.url, changed: account.aup !== undefined,
        }));
      }
      if (interaction.prompt.reasons.every((r) => r === AUP_REASON)) {
        // The policy was the only reason to stop here, and it is accepted now.
        const grantId = await grantConsent(interaction);
        return finish(ctx, { consent: { grantId } });
      }
      const staticClient = clientsById.get(clientId);
      const missing = interaction.prompt.details;
      const missingResourceScopes = (missing.missingResourceScopes as Record<string, string[]> | undefined) ?? {};
      // The admin API's scope is always asked for, even by a client that skips consent: no relying party
      // turns an administrator's sign-in into an admin token unseen.
      const asksAdmin = Object.values(missingResourceScopes).some((scopes) => scopes.includes(ADMIN_SCOPE));
      // fedgate's own console asks for nothing else: an administrator opening /admin wants the admin token.
      if ((((staticClient && !staticClient.consentRequired) || clientId === ACCOUNT_CLIENT_ID) && !asksAdmin) || clientId === CONSOLE_CLIENT_ID) {
        const grantId = await grantConsent(interaction);
        return finish(ctx, { consent: { grantId } });
      }
      const oidcScopes = (missing.missingOIDCScope as string[] | undefined) ?? [];
      const resources = Object.entries(missingResourceScopes).map(([audience, scopes]) => ({ audience, scopes }));
      const name = await clientName(clientId);
      return sendPage(ctx, (nonce) => pages.consentPage({
        nonce,
        action: `/interaction/${interaction.uid}/confirm`,
        abortAction: `/interaction/${interaction.uid}/abort`,
        csrfToken: csrfToken(ctx),
        clientName: name,
        accountName: account?.name ?? account?.username ?? 'your account',
        scopes: oidcScopes.filter((s) => s !== 'offline_access').map((value) => ({ value, description: SCOPE_DESCRIPTIONS[value] ?? value })),
        resources,
        offlineAccess: oidcScopes.includes('offline_access'),
      }));
    }
    throw new InteractionError(400, 'invalid_request', 'This step of the sign-in is not supported.');
  });

  router.post('/:uid/login', form, async (ctx) => {
    const interaction = await details(ctx);
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    checkCsrf(ctx, body.csrf);
    if (interaction.prompt.name !== 'login') throw new InteractionError(400, 'invalid_request', 'This sign-in request is not waiting for a login.');
    const username = typeof body.username === 'string' ? body.username.trim().slice(0, 100) : '';
    const password = typeof body.password === 'string' ? body.password.slice(0, 1024) : '';
    const clientId = String(interaction.params.client_id);
    if (!username || !password) return renderLogin(ctx, interaction, { username, error: 'Enter your username and password.' }, 400);

    const { maxFailures, lockoutSeconds } = config.login;
    const userKey = throttleKey('user', username);
    // An address counts its attempts and, apart, its successes in the same window: its failures are the difference
    // (many people may sign in from behind one NAT).
    const ipAttemptsKey = throttleKey('ip', ctx.ip);
    const ipSuccessesKey = throttleKey('ip-ok', ctx.ip);
    // Counted before the password is checked: parallel guesses each take their place in the count, so none gets past the limit.
    const [userAttempts, ipAttempts, ipSuccesses] = await Promise.all([
      store.increment(userKey, lockoutSeconds),
      store.increment(ipAttemptsKey, lockoutSeconds),
      store.get<number>(ipSuccessesKey),
    ]);
    if (userAttempts > maxFailures || ipAttempts - (ipSuccesses ?? 0) > maxFailures * 4) {
      metrics.logins.inc({ method: 'password', outcome: 'locked' });
      await audit.record({ type: 'login.failed', actor: `username:${username}`, outcome: 'failure', ip: ctx.ip, client: clientId, detail: { reason: 'too_many_attempts' } });
      return renderLogin(ctx, interaction, { username, error: 'Too many failed attempts. Wait a few minutes and try again.' }, 429);
    }

    const account = await accounts.verifyPassword(username, password);
    if (!account || account.disabled) {
      metrics.logins.inc({ method: 'password', outcome: 'failure' });
      await audit.record({
        type: 'login.failed', actor: `username:${username}`, outcome: 'failure', ip: ctx.ip, client: clientId,
        detail: { reason: account?.disabled ? 'account_disabled' : 'bad_credentials' },
      });
      // One message for unknown user, wrong password and disabled account: no account enumeration.
      return renderLogin(ctx, interaction, { username, error: 'The username or password is not correct.' }, 401);
    }
    // The successes end with the attempts' window.
    const windowLeft = await store.ttl(ipAttemptsKey);
    if (windowLeft !== undefined && windowLeft > 0) await store.increment(ipSuccessesKey, windowLeft);
    await store.delete(userKey);
    metrics.logins.inc({ method: 'password', outcome: 'success' });
    await audit.record({ type: 'login', actor: account.id, outcome: 'success', ip: ctx.ip, client: clientId, detail: { method: 'password', username: account.username } });
    return finish(ctx, { login: { accountId: account.id, amr: ['pwd'] } }, false);
  });

  // An identity bridge (SAML, X.509) finished the login; this browser must hold the interaction cookie.
  router.get('/:uid/federated', async (ctx) => {
    const interaction = await details(ctx);
    if (interaction.prompt.name !== 'login') throw new InteractionError(400, 'invalid_request', 'This sign-in request is not waiting for a login.');
    const pending = await takePendingLogin(store, String(ctx.query.key ?? ''), interaction.uid);
    if (!pending) throw new InteractionError(400, 'invalid_request', 'This sign-in has expired or was already used. Go back to the application and start again.');
    const account = await accounts.findById(pending.accountId);
    if (!account || account.disabled) throw new InteractionError(403, 'access_denied', 'This account cannot sign in.');
    metrics.logins.inc({ method: pending.amr, outcome: 'success' });
    return finish(ctx, { login: { accountId: account.id, amr: [pending.amr] } }, false);
  });

  router.post('/:uid/aup', form, async (ctx) => {
    const interaction = await details(ctx);
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    checkCsrf(ctx, body.csrf);
    if (interaction.prompt.name !== 'consent' || !config.aup) throw new InteractionError(400, 'invalid_request', 'This sign-in request is not waiting for the acceptable use policy.');
    const accountId = interaction.session!.accountId;
    // The version the page showed: when the policy changed meanwhile, the new one is shown.
    if (body.version === config.aup.version) {
      await accounts.acceptAup(accountId, config.aup.version);
      await audit.record({ type: 'aup.accepted', actor: accountId, outcome: 'success', ip: ctx.ip, target: accountId, client: String(interaction.params.client_id), detail: { version: config.aup.version } });
    }
    ctx.status = 303;
    ctx.redirect(`/interaction/${interaction.uid}`);
  });

  router.post('/:uid/confirm', form, async (ctx) => {
    const interaction = await details(ctx);
    checkCsrf(ctx, (ctx.request.body as Record<string, unknown> | undefined)?.csrf);
    if (interaction.prompt.name !== 'consent') throw new InteractionError(400, 'invalid_request', 'This sign-in request is not waiting for consent.');
    const grantId = await grantConsent(interaction);
    await audit.record({ type: 'consent', actor: interaction.session!.accountId, outcome: 'success', ip: ctx.ip, client: String(interaction.params.client_id) });
    return finish(ctx, { consent: { grantId } });
  });

  router.post('/:uid/abort', form, async (ctx) => {
    const interaction = await details(ctx);
    checkCsrf(ctx, (ctx.request.body as Record<string, unknown> | undefined)?.csrf);
    await audit.record({
      type: 'consent', actor: interaction.session?.accountId ?? 'anonymous', outcome: 'failure', ip: ctx.ip,
      client: String(interaction.params.client_id), detail: { reason: 'access_denied' },
    });
    return finish(ctx, { error: 'access_denied', error_description: 'The user cancelled the request' }, false);
  });

  return router;
}
