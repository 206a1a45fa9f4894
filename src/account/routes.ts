import { absentUnlessUnavailable } from '../store/errors.ts';
import { createHash, randomBytes } from 'node:crypto';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { effectiveGroups, hashPassword, type Account, type Accounts, type LinkedIdentity } from '../accounts/accounts.ts';
import { GroupError, type Groups } from '../accounts/groups.ts';
import { RequestError, type MembershipRequests, type RegistrationRequests } from '../accounts/requests.ts';
import type { Store } from '../store/store.ts';
import type { Config } from '../config/schema.ts';
import type { FederationHooks, RegistrationIdentity } from '../federation/types.ts';
import { dropRegistrationIdentity, registrationIdentity } from '../federation/hooks.ts';
import { csrfMatches, csrfToken } from '../http/csrf.ts';
import { PageError } from '../util/errors.ts';
import { respondWithError } from '../http/error-response.ts';
import { sendPage } from '../http/page.ts';
import type { Audit } from '../observability/audit.ts';
import * as pages from '../views/pages.ts';
import { ACCOUNT_CLIENT_ID } from '../config/names.ts';

export interface AccountRoutesDeps {
  config: Config;
  accounts: Accounts;
  audit: Audit;
  hooks: FederationHooks;
  provider: () => Provider;
  /** Links that start linking another identity (from the identity bridges). */
  linkOptions: () => Array<{ href: string; label: string }>;
  store: Store;
  groups: Groups;
  /** Requests to join a group (decided by the group's managers and administrators). */
  requests: MembershipRequests;
  /** Account requests (self-registration, `registration.accounts.enabled`). */
  registrations: RegistrationRequests;
}

/** Registration forms one client address may send per hour (the form is open to anyone). */
const REGISTRATIONS_PER_HOUR = 5;
/** Pending registrations at most: beyond, the form asks people to come back later. */
const MAX_PENDING_REGISTRATIONS = 10_000;
const USERNAME = /^[A-Za-z0-9._@-]{1,100}$/;

const CSRF_COOKIE = 'fedgate.account-csrf';
const STATE_COOKIE = 'fedgate.account-state';

/**
 * `/account`: the signed-in user's own page: groups, linked identities,
 * linking another (through the identity bridges) and unlinking. Signing in
 * goes through fedgate's own authorization endpoint with the built-in
 * account client, so every way of signing in works here too.
 */
export function accountRoutes(deps: AccountRoutesDeps): Router {
  const { config, accounts, audit, hooks, groups, requests, registrations, store } = deps;
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
    await showAccount(ctx, account);
  });

  const NOTICES: Record<string, string> = {
    linked: 'The identity is now linked to your account.', unlinked: 'The identity was unlinked.',
    requested: 'Your request was sent to the group\'s managers.', cancelled: 'The request was cancelled.', left: 'You left the group.',
  };
  const showAccount = async (ctx: Context, account: Account, error?: string) => {
    const notice = error ? undefined : NOTICES[String(ctx.query.notice ?? '')];
    const mine = await requests.forOwner(account.id);
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
      membership: {
        directGroups: account.groups,
        requests: mine.map((r) => ({ id: r.id, group: r.group, reason: r.reason, status: r.status, decisionReason: r.decisionReason })),
        requestAction: '/account/requests',
        cancelAction: '/account/requests/cancel',
        leaveAction: '/account/leave',
        error,
      },
    }), error ? 400 : 200);
  };

  /** The signed-in account of a form post with a matching CSRF token, or undefined after answering. */
  const formAccount = async (ctx: Context): Promise<{ account: Account; body: Record<string, unknown> } | undefined> => {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    if (!csrfMatches(ctx, CSRF_COOKIE, body.csrf)) {
      error(ctx, 403, 'The form expired or was not sent from this site. Open your account page again.');
      return undefined;
    }
    const account = await hooks.currentAccount(ctx);
    if (!account) {
      error(ctx, 401, 'You are not signed in. Open your account page again.');
      return undefined;
    }
    return { account, body };
  };
  const done = (ctx: Context, notice: string) => {
    ctx.status = 303;
    ctx.redirect(`/account?notice=${notice}`);
  };

  router.post('/requests', form, async (ctx) => {
    const signed = await formAccount(ctx);
    if (!signed) return;
    const { account, body } = signed;
    const group = typeof body.group === 'string' ? body.group.trim().slice(0, 300) : '';
    const reason = typeof body.reason === 'string' ? body.reason.trim().slice(0, 1000) : '';
    const refuse = (message: string) => showAccount(ctx, account, message);
    if (!group || !reason) return refuse('Name the group and say why you want to join it.');
    if (!(await groups.exists(group))) return refuse(`There is no group ${group}.`);
    if (effectiveGroups(account.groups).includes(group)) return refuse(`You are already a member of ${group}.`);
    try {
      const request = await requests.create({ accountId: account.id, username: account.username, group, reason });
      await audit.record({ type: 'membership.requested', actor: account.id, outcome: 'success', ip: ctx.ip, target: group, detail: { request: request.id, reason } });
    } catch (err) {
      if (err instanceof RequestError) return refuse(err.code === 'duplicate' ? `Your request to join ${group} is already waiting (or you have too many open requests).` : err.message);
      throw err;
    }
    done(ctx, 'requested');
  });

  router.post('/requests/cancel', form, async (ctx) => {
    const signed = await formAccount(ctx);
    if (!signed) return;
    const request = await requests.get(String(signed.body.id ?? ''));
    if (!request || request.accountId !== signed.account.id) return error(ctx, 400, 'That request is not yours.');
    try {
      await requests.decide(request.id, 'cancelled', signed.account.username);
    } catch (err) {
      if (err instanceof RequestError) return error(ctx, 409, `The request was already ${request.status === 'pending' ? 'decided' : request.status}.`);
      throw err;
    }
    await audit.record({ type: 'membership.request.cancelled', actor: signed.account.id, outcome: 'success', ip: ctx.ip, target: request.group, detail: { request: request.id } });
    done(ctx, 'cancelled');
  });

  router.post('/leave', form, async (ctx) => {
    const signed = await formAccount(ctx);
    if (!signed) return;
    const group = typeof signed.body.group === 'string' ? signed.body.group : '';
    let left = false;
    try {
      left = await groups.removeMember(group, signed.account.id);
    } catch (err) {
      if (!(err instanceof GroupError)) throw err;
    }
    if (!left) return error(ctx, 400, 'You are not a direct member of that group.');
    await audit.record({
      type: 'group.member.removed', actor: signed.account.id, outcome: 'success', ip: ctx.ip, target: group,
      detail: { account: signed.account.id, username: signed.account.username, action: 'leave' },
    });
    done(ctx, 'left');
  });

  const registrationEnabled = config.registration.accounts.enabled;
  const REGISTER_CSRF = 'fedgate.register-csrf';
  const registerCsrf = (ctx: Context) => csrfToken(ctx, { cookie: REGISTER_CSRF, path: '/account/register', secure });
  const registrationForm = (ctx: Context, extra: Omit<pages.RegistrationPageOptions, 'nonce' | 'action' | 'csrfToken'> = {}, status = 200) =>
    sendPage(ctx, (nonce) => pages.registrationPage({ nonce, action: '/account/register', csrfToken: registerCsrf(ctx), ...extra }), status);

  const identityLabel = (i: RegistrationIdentity) => `${i.type === 'saml' ? 'institution' : 'certificate'}: ${i.subject}`;

  router.get('/register', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (!registrationEnabled) return error(ctx, 404, 'Self-registration is not enabled here. Ask an administrator for an account.');
    // After a first federated sign-in without an account: the identity is linked on approval, and no password is asked.
    const parked = await registrationIdentity(ctx, store);
    registrationForm(ctx, parked ? { identity: identityLabel(parked.identity), values: { name: parked.identity.name, email: parked.identity.email } } : {});
  });

  router.post('/register', form, async (ctx) => {
    if (!registrationEnabled) return error(ctx, 404, 'Self-registration is not enabled here. Ask an administrator for an account.');
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    if (!csrfMatches(ctx, REGISTER_CSRF, body.csrf)) return error(ctx, 403, 'The form expired or was not sent from this site. Open the registration page again.');
    const text = (name: string, max: number) => (typeof body[name] === 'string' ? (body[name] as string).trim().slice(0, max) : '');
    const values = { username: text('username', 100), name: text('name', 200), email: text('email', 200), reason: text('reason', 1000) };
    const password = typeof body.password === 'string' ? body.password.slice(0, 1024) : '';
    const parked = await registrationIdentity(ctx, store);
    const refuse = (message: string, status = 400) => registrationForm(ctx, { values, error: message, ...(parked ? { identity: identityLabel(parked.identity) } : {}) }, status);
    if (!USERNAME.test(values.username)) return refuse('Choose a username of letters, digits and . _ @ - only.');
    if (!parked && password.length < 12) return refuse('Choose a password of at least 12 characters.');
    if (!values.reason) return refuse('Say why you need an account.');
    if (values.email && !/^[^\s@]+@[^\s@]+$/.test(values.email)) return refuse('That email address does not look right.');
    const attempts = await store.increment(`registration-attempts:${createHash('sha256').update(ctx.ip).digest('base64url')}`, 3600);
    if (attempts > REGISTRATIONS_PER_HOUR) return refuse('Too many requests from your address. Try again in an hour.', 429);
    // The same answer whether or not the username exists: a taken one is refused when an administrator decides.
    if ((await registrations.pendingCount()) >= MAX_PENDING_REGISTRATIONS) return refuse('Too many account requests are waiting. Try again later.', 503);
    try {
      const registration = await registrations.create({
        username: values.username, name: values.name || undefined, email: values.email || undefined, reason: values.reason,
        ...(parked
          ? { identity: { type: parked.identity.type, issuer: parked.identity.issuer, subject: parked.identity.subject } }
          : { passwordHash: await hashPassword(password) }),
      });
      if (parked) await dropRegistrationIdentity(ctx, store, parked.key);
      await audit.record({ type: 'registration.requested', actor: `username:${values.username}`, outcome: 'success', ip: ctx.ip, target: values.username, detail: { registration: registration.id } });
    } catch (err) {
      if (err instanceof RequestError) return refuse('An account with that username was already requested.', 409);
      throw err;
    }
    registrationForm(ctx, { submitted: true });
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
