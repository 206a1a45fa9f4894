/**
 * The SAML endpoints under `/saml/`:
 *
 * - `GET /saml/metadata` — the signed SP metadata;
 * - `GET /saml/discovery?interaction=<uid>|link=1[&q=][&idp=]` — choose an identity provider;
 * - `GET /saml/login?idp=<entityID>&interaction=<uid>|link=1` — send a signed
 *   AuthnRequest (HTTP-Redirect), remembering its ID, purpose, identity
 *   provider and browser in the store under an opaque RelayState;
 * - `POST /saml/acs` — the AssertionConsumerService (HTTP-POST). This is a
 *   cross-site POST, so SameSite=Lax cookies are absent: it only checks the
 *   response, keeps the outcome under a fresh random key and answers 303 to
 * - `GET /saml/complete?state=<key>` — a top-level GET that has the cookies:
 *   checks it is the browser that started, then logs in (`hooks.finishLogin`)
 *   or links the identity to the signed-in account.
 *
 * Every refusal is an error page (4xx, a short reason, nothing from the
 * assertion) and an audit event; nothing here answers 500 for bad input.
 */
import { createHash, randomBytes } from 'node:crypto';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import type Koa from 'koa';
import type { Context } from 'koa';
import compose from 'koa-compose';
import type { Logger } from 'pino';
import { AccountError, type Account, type Accounts } from '../../accounts/accounts.ts';
import type { SamlConfig } from '../../config/saml-schema.ts';
import { PageError } from '../../util/errors.ts';
import { errorResponder } from '../../http/error-response.ts';
import { sendPage } from '../../http/page.ts';
import type { Audit } from '../../observability/audit.ts';
import { isStoreUnavailable } from '../../store/errors.ts';
import type { Store } from '../../store/store.ts';
import type { FederationHooks, InteractionCheck } from '../types.ts';
import type { AccountResolver } from './account-resolver.ts';
import type { AttributeMapper, MappedIdentity } from './attributes.ts';
import type { IdpRecord } from './metadata.ts';
import type { IdpRegistry } from './registry.ts';
import { RESPONSE_LIMITS } from './response-checks.ts';
import { relayKey, SamlResponseError, type Purpose, type RejectReason, type RequestContext, type ResponseValidator } from './response.ts';
import type { ServiceProvider } from './service-provider.ts';
import { discoveryPage, linkedPage, type DiscoveryChoice } from './views.ts';

/** What the routes need. */
export interface SamlRoutesDeps {
  config: SamlConfig;
  /** Cookies are `Secure` when the issuer is https. */
  secureCookies: boolean;
  store: Store;
  logger: Logger;
  audit: Audit;
  accounts: Accounts;
  hooks: FederationHooks & InteractionCheck;
  registry: IdpRegistry;
  sp: ServiceProvider;
  validator: ResponseValidator;
  mapper: AttributeMapper;
  resolver: AccountResolver;
}

/** Where a discovery page or login was asked for. */
export type DiscoveryPurpose = { interaction: string } | { link: true };

/** What the ACS leaves for /saml/complete. */
interface Outcome {
  purpose: Purpose;
  browser: string;
  idp: string;
  identity: MappedIdentity;
}

const BROWSER_COOKIE = 'fedgate.saml_browser';
const REMEMBER_COOKIE = 'fedgate.saml_idp';
/** The ACS outcome waits this long for the browser's GET (it follows at once). */
const OUTCOME_TTL_SECONDS = 120;
const outcomeKey = (key: string) => `saml:outcome:${key}`;
const RANDOM_KEY = /^[A-Za-z0-9_-]{43}$/;
const UID = /^[A-Za-z0-9_-]{1,128}$/;
const DISCOVERY_LIMIT = 50;


/** What the user reads for each refused response: short, and nothing from the response. */
const REJECT_MESSAGES: Partial<Record<RejectReason, string>> = {
  status_not_success: 'Your institution did not sign you in. Go back to the application and try again.',
  unknown_request: 'This sign-in was not started here or has expired. Go back to the application and start again.',
  unsolicited: 'Sign-ins must start at the application, not at your institution. Go back to the application and start again.',
  replayed: 'This sign-in response was already used. Go back to the application and start again.',
  expired: 'The sign-in response has expired. Check your computer\'s clock, then go back to the application and start again.',
  not_yet_valid: 'The sign-in response is not valid yet. Check your computer\'s clock, then go back to the application and start again.',
  busy: 'Too many sign-ins are being checked right now. Wait a moment, then go back to the application and start again.',
  unknown_idp: 'This institution is not trusted by this service.',
  no_subject: 'Your institution did not release an identifier this service can use. Contact your institution\'s help desk.',
};
const BAD_REQUEST: ReadonlySet<RejectReason> = new Set(['malformed', 'doctype', 'too_complex', 'unknown_request', 'unsolicited', 'expired', 'not_yet_valid']);
/** Refusals that are not 400 or 403. */
const STATUS: Partial<Record<RejectReason, number>> = { too_large: 413, busy: 503 };

function parsePurpose(query: Record<string, unknown>): DiscoveryPurpose | undefined {
  const interaction = typeof query.interaction === 'string' ? query.interaction : undefined;
  const link = query.link === '1';
  if (interaction !== undefined && !link && UID.test(interaction)) return { interaction };
  if (link && interaction === undefined) return { link: true };
  return undefined;
}

function purposeParams(purpose: DiscoveryPurpose): Record<string, string> {
  return 'interaction' in purpose ? { interaction: purpose.interaction } : { link: '1' };
}

/** `/saml/login?idp=...` for `purpose`. */
export function loginHref(entityID: string, purpose: DiscoveryPurpose): string {
  return `/saml/login?${new URLSearchParams({ idp: entityID, ...purposeParams(purpose) })}`;
}

/** `/saml/discovery?...` for `purpose`. */
export function discoveryHref(purpose: DiscoveryPurpose): string {
  return `/saml/discovery?${new URLSearchParams(purposeParams(purpose))}`;
}

/** The Koa middleware serving every path under `/saml/`. */
export function samlRoutes(deps: SamlRoutesDeps): Koa.Middleware {
  const { config, store, audit, accounts, hooks, registry, sp, validator, mapper, resolver, secureCookies } = deps;
  const logger = deps.logger.child({ component: 'saml' });
  const router = new Router({ prefix: '/saml' });
  // The largest response accepted (RESPONSE_LIMITS.maxBytes) in base64, form-encoded, with its RelayState.
  const form = bodyParser({ enableTypes: ['form'], formLimit: `${Math.ceil((RESPONSE_LIMITS.maxBytes * 4) / 3 * 1.25 / 1024)}kb`, encoding: 'utf-8' });

  const cookieOptions = { httpOnly: true, sameSite: 'lax' as const, secure: secureCookies, path: '/saml', overwrite: true };
  const browserId = (ctx: Context, create: boolean): string | undefined => {
    const existing = ctx.cookies.get(BROWSER_COOKIE);
    if (existing && RANDOM_KEY.test(existing)) return existing;
    if (!create) return undefined;
    const id = randomBytes(32).toString('base64url');
    ctx.cookies.set(BROWSER_COOKIE, id, cookieOptions);
    return id;
  };
  const remembered = (ctx: Context): IdpRecord | undefined => {
    const value = ctx.cookies.get(REMEMBER_COOKIE);
    if (!value || value.length > 2048) return undefined;
    const entityID = Buffer.from(value, 'base64url').toString('utf8');
    const idp = registry.get(entityID);
    return idp && !idp.hidden ? idp : undefined;
  };
  const summary = (idp: IdpRecord, purpose: DiscoveryPurpose): DiscoveryChoice => ({ displayName: idp.displayName, href: loginHref(idp.entityID, purpose), logo: idp.logo });
  const refusal = async (ctx: Context, purpose: Purpose | DiscoveryPurpose | undefined, actor: string | undefined, detail: Record<string, unknown>) => {
    const linking = purpose !== undefined && ('link' in purpose || ('kind' in purpose && purpose.kind === 'link'));
    await audit.record({
      type: linking ? 'identity.link_refused' : 'login.failed',
      actor: actor ?? 'anonymous',
      outcome: 'failure',
      ip: ctx.ip,
      detail: { method: 'saml', ...detail },
    });
  };

  router.get('/metadata', (ctx) => {
    ctx.type = 'application/samlmetadata+xml';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = sp.metadata();
  });

  router.get('/discovery', async (ctx) => {
    const purpose = parsePurpose(ctx.query);
    if (!purpose) throw new PageError(400, 'invalid_request', 'This page must be opened from a sign-in or from your account page.');
    const hint = typeof ctx.query.idp === 'string' ? registry.get(ctx.query.idp) : undefined;
    if (hint) {
      ctx.status = 303;
      ctx.redirect(loginHref(hint.entityID, purpose));
      return;
    }
    const query = typeof ctx.query.q === 'string' ? ctx.query.q.slice(0, 100) : '';
    const matches = registry.match(query);
    const last = remembered(ctx);
    sendPage(ctx, (nonce) => discoveryPage({
      nonce,
      hidden: purposeParams(purpose),
      query,
      remembered: last ? summary(last, purpose) : undefined,
      results: matches.slice(0, DISCOVERY_LIMIT).map((idp) => summary(idp, purpose)),
      total: matches.length,
      link: 'link' in purpose,
    }));
  });

  router.get('/login', async (ctx) => {
    const purpose = parsePurpose(ctx.query);
    if (!purpose) throw new PageError(400, 'invalid_request', 'This sign-in must be started from the application or your account page.');
    const entityID = typeof ctx.query.idp === 'string' ? ctx.query.idp : '';
    const idp = registry.get(entityID);
    let stored: Purpose;
    let actor: string | undefined;
    if ('link' in purpose) {
      const account = await hooks.currentAccount(ctx);
      if (!account) {
        await refusal(ctx, purpose, undefined, { idp: entityID || undefined, reason: 'not_signed_in' });
        throw new PageError(403, 'login_required', 'Sign in to your account first, then link your institutional account from the account page.');
      }
      stored = { kind: 'link', accountId: account.id };
      actor = account.id;
    } else {
      // Before anything is stored or a cookie set: a made-up interaction id leaves no trace.
      if (!(await hooks.interactionExists(purpose.interaction))) {
        logger.info({ reason: 'unknown_interaction' }, 'SAML login for an unknown interaction refused');
        throw new PageError(400, 'invalid_request', 'This sign-in request has expired or does not exist. Go back to the application and start again.');
      }
      stored = { kind: 'login', interaction: purpose.interaction };
    }
    if (!idp) {
      await refusal(ctx, purpose, actor, { idp: entityID.slice(0, 1024) || undefined, reason: 'unknown_idp' });
      throw new PageError(400, 'unknown_idp', 'This institution is not known to this service. Choose another one.');
    }
    const requestId = `_${randomBytes(20).toString('hex')}`;
    const relayState = randomBytes(32).toString('base64url');
    const context: RequestContext = { requestId, idp: idp.entityID, purpose: stored, browser: browserId(ctx, true)!, createdAt: Date.now() };
    await store.set(relayKey(relayState), context, config.requestTtlSeconds);
    const url = await sp.authnRequestUrl(idp, requestId, relayState);
    if (config.rememberChoiceDays > 0) {
      ctx.cookies.set(REMEMBER_COOKIE, Buffer.from(idp.entityID).toString('base64url'), { ...cookieOptions, maxAge: config.rememberChoiceDays * 86_400_000 });
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(url);
  });

  /** Every refusal at the ACS: an audit event, a log line without the response, an error page. */
  const reject = async (ctx: Context, reason: RejectReason, idp: string | undefined, status?: string): Promise<never> => {
    await audit.record({ type: 'saml.response_rejected', actor: idp ? `saml:${idp}` : 'anonymous', outcome: 'failure', ip: ctx.ip, detail: { reason, ...(idp ? { idp } : {}), ...(status ? { status } : {}) } });
    logger.warn({ reason, idp, status }, 'SAML response refused');
    if (reason === 'busy') ctx.set('Retry-After', '5');
    throw new PageError(STATUS[reason] ?? (BAD_REQUEST.has(reason) ? 400 : 403), reason, REJECT_MESSAGES[reason] ?? 'The sign-in response from your institution was not accepted. Go back to the application and start again.');
  };
  /** The form parser, its refusals (a body over the limit: 413) audited like any refused response. */
  const acsForm: Koa.Middleware = async (ctx, next) => {
    try {
      await form(ctx, async () => {});
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status === 413) return reject(ctx, 'too_large', undefined);
      if (status && status >= 400 && status < 500) return reject(ctx, 'malformed', undefined);
      throw err;
    }
    await next();
  };

  router.post('/acs', acsForm, async (ctx) => {
    const body = (ctx.request.body ?? {}) as Record<string, unknown>;
    const samlResponse = typeof body.SAMLResponse === 'string' ? body.SAMLResponse : '';
    const relayState = typeof body.RelayState === 'string' ? body.RelayState : undefined;
    if (!samlResponse) return reject(ctx, 'malformed', undefined);
    let accepted;
    try {
      accepted = await validator.validate(samlResponse, relayState);
    } catch (err) {
      if (err instanceof SamlResponseError) return reject(ctx, err.reason, err.idp, err.idpStatus);
      throw err;
    }
    const identity = mapper.map(accepted.statements, accepted.idp, sp.entityId);
    if (identity === 'no_subject') return reject(ctx, 'no_subject', accepted.idp.entityID);
    if (identity.refusedEntitlements.length > 0) {
      // The login goes on without them; the identity provider's attempt is on record.
      const { entityID, registrationAuthority } = accepted.idp;
      await audit.record({
        type: 'saml.entitlement_refused', actor: `saml:${entityID}`, outcome: 'failure', ip: ctx.ip,
        detail: {
          idp: entityID, ...(registrationAuthority ? { registrationAuthority } : {}),
          count: identity.refusedEntitlements.length, values: identity.refusedEntitlements.slice(0, 10).map((v) => v.slice(0, 256)),
        },
      });
      logger.warn({ idp: entityID, count: identity.refusedEntitlements.length }, 'entitlements from an identity provider their rules do not name were ignored');
    }
    const key = randomBytes(32).toString('base64url');
    const outcome: Outcome = { purpose: accepted.context.purpose, browser: accepted.context.browser, idp: accepted.idp.entityID, identity };
    await store.set(outcomeKey(key), outcome, OUTCOME_TTL_SECONDS);
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(`/saml/complete?state=${key}`);
  });

  router.get('/complete', async (ctx) => {
    const state = typeof ctx.query.state === 'string' ? ctx.query.state : '';
    const outcome = RANDOM_KEY.test(state) ? await store.get<Outcome>(outcomeKey(state)) : undefined;
    // Deleting is the claim: of two requests with the same state only one gets true.
    if (!outcome || !(await store.delete(outcomeKey(state)))) {
      throw new PageError(400, 'invalid_request', 'This sign-in has expired or was already completed. Go back to the application and start again.');
    }
    const { purpose, idp, identity } = outcome;
    const idpName = registry.get(idp)?.displayName ?? idp;
    ctx.set('Cache-Control', 'no-store');
    if (browserId(ctx, false) !== outcome.browser) {
      await refusal(ctx, purpose, purpose.kind === 'link' ? purpose.accountId : undefined, { idp, reason: 'browser_mismatch' });
      throw new PageError(403, 'access_denied', 'This sign-in was started in another browser. Start again in this one.');
    }

    if (purpose.kind === 'link') {
      const account = await hooks.currentAccount(ctx);
      if (!account || account.id !== purpose.accountId) {
        await refusal(ctx, purpose, account?.id ?? purpose.accountId, { idp, reason: account ? 'account_changed' : 'not_signed_in' });
        throw new PageError(403, 'login_required', 'You are no longer signed in to the account you started linking from. Sign in and start again.');
      }
      let linked: Account;
      try {
        linked = await accounts.link(account.id, { type: 'saml', issuer: idp, subject: identity.subject });
      } catch (err) {
        if (err instanceof AccountError && err.code === 'identity_taken') {
          await refusal(ctx, purpose, account.id, { idp, reason: 'identity_taken' });
          throw new PageError(409, 'identity_taken', `Your account at ${idpName} is already linked to another account here. Unlink it there first, or sign in with it.`);
        }
        throw err;
      }
      const { account: updated, added } = await resolver.addGroups(linked, identity.groups);
      await audit.record({ type: 'identity.linked', actor: account.id, outcome: 'success', ip: ctx.ip, target: account.id, detail: { method: 'saml', type: 'saml', idp, ...(added.length ? { groupsAdded: added } : {}) } });
      sendPage(ctx, (nonce) => linkedPage({ nonce, idpName, accountName: updated.name ?? updated.username }));
      return;
    }

    const resolved = await resolver.forLogin(idp, identity);
    if (typeof resolved === 'string') {
      await refusal(ctx, purpose, undefined, { idp, reason: resolved });
      if (resolved === 'busy') throw new PageError(409, 'temporarily_unavailable', 'Your account is being set up by another sign-in. Try again in a moment.');
      if (resolved === 'account_disabled') throw new PageError(403, 'access_denied', 'Your account is disabled.');
      // No account yet and none made just in time: the person may ask for one (self-registration).
      if (await hooks.offerRegistration?.(ctx, { type: 'saml', issuer: idp, subject: identity.subject, name: identity.name, email: identity.email })) return;
      throw new PageError(403, 'access_denied', `No account here is linked to your account at ${idpName}. Sign in another way and link it from your account page.`);
    }
    const { account, created, addedGroups } = resolved;
    try {
      await hooks.finishLogin(ctx, purpose.interaction, account, 'saml');
    } catch (err) {
      // A store outage is not an expired sign-in: it goes on to the 503 answer (Retry-After).
      if (err instanceof PageError || isStoreUnavailable(err)) throw err;
      await refusal(ctx, purpose, account.id, { idp, reason: 'interaction_expired' });
      logger.info({ err: { message: (err as Error).message } }, 'SAML login could not finish its interaction');
      throw new PageError(400, 'invalid_request', 'This sign-in request has expired or was opened in another browser. Go back to the application and start again.');
    }
    await audit.record({
      type: 'login', actor: account.id, outcome: 'success', ip: ctx.ip, target: account.id,
      detail: { method: 'saml', idp, ...(created ? { created: true } : {}), ...(addedGroups.length ? { groupsAdded: addedGroups } : {}), subject: subjectRef(idp, identity.subject) },
    });
  });

  const dispatch = compose([router.routes(), router.allowedMethods()] as Parameters<typeof compose>[0]) as unknown as Koa.Middleware;
  // Refusals and unreadable requests (body parser refusals) are error pages; anything else goes on to the app's boundary.
  const errorPages = errorResponder({ format: 'page', unreadable: 'The request could not be read.' });
  return (ctx) => errorPages(ctx, async () => {
    await dispatch(ctx, async () => {});
    if (ctx.status === 405) throw new PageError(405, 'invalid_request', 'This page does not accept that method.');
    if (ctx.status === 404 && ctx.body == null) throw new PageError(404, 'not_found', 'There is no such page.');
  });
}

/** A reference to a linked identity for audit trails: a hash, not the identifier itself. */
function subjectRef(idp: string, subject: string): string {
  return createHash('sha256').update(`${idp}\n${subject}`).digest('base64url').slice(0, 16);
}
