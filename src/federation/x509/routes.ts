/**
 * `GET /x509/login?interaction=<uid>` and `GET /x509/link`: certificate
 * login into an OIDC interaction, and linking a certificate to the
 * signed-in account. Both read the client certificate (from the TLS
 * connection of the mTLS listener, or from a trusted proxy's header),
 * validate it against the trust anchors, and record an audit event for
 * every outcome.
 *
 * Answers are pages, or JSON when the client prefers it (`Accept`):
 * 400 for a missing or malformed certificate or request, 403 for a
 * certificate that is refused or not linked, 409 for a certificate linked
 * to another account.
 */
import { randomUUID } from 'node:crypto';
import type { Context, Middleware, Next } from 'koa';
import { AccountError, type Account, type Accounts } from '../../accounts/accounts.ts';
import type { CertificateLookup } from '../../http/client-certificate.ts';
import { FedgateError } from '../../util/errors.ts';
import { respondWithError } from '../../http/error-response.ts';
import { sendPage } from '../../http/page.ts';
import type { Audit } from '../../observability/audit.ts';
import type { Logger } from '../../observability/logger.ts';
import type { FederationHooks } from '../types.ts';
import { certificateLinkedPage, certificateProblemPage } from './pages.ts';
import type { CertificateVerification, VerifiedCertificate, X509FailureReason } from './verify.ts';

/** Everything a refusal can be about: certificate problems and what happens after validation. */
export type X509RefusalReason =
  | X509FailureReason
  | 'not_linked'
  | 'account_disabled'
  | 'identity_taken'
  | 'not_signed_in'
  | 'interaction'
  | 'invalid_request';

/** What the routes need. */
export interface X509RoutesDeps {
  enabled: boolean;
  jit: boolean;
  logger: Logger;
  audit: Audit;
  accounts: Accounts;
  hooks: FederationHooks;
  /** The client certificate of a request, with the chain sent along. */
  inspect(ctx: Context): CertificateLookup;
  /** Validates a chain (DER, leaf first). */
  verify(chain: Buffer[]): CertificateVerification;
  /** The sign-in page of an interaction, offered after a failed certificate login. */
  interactionUrl?(uid: string): string;
}

/** The path prefix every X.509 route lives under. */
export const X509_PREFIX = '/x509/';
export const LOGIN_PATH = '/x509/login';
export const LINK_PATH = '/x509/link';

const UID = /^[A-Za-z0-9_-]{1,128}$/;

interface Problem {
  back?: { href: string; label: string } | undefined;
  status: number;
  reason: X509RefusalReason;
  title: string;
  message: string;
  hint?: string | undefined;
  subject?: string | undefined;
  issuer?: string | undefined;
}

const HINTS: Partial<Record<X509RefusalReason, string>> = {
  no_certificate: 'Check that your certificate is installed in your browser (or passed to your client) and choose it when asked. If you were not asked, close every window of the browser and try again.',
  malformed: 'The certificate did not reach fedgate intact. If this persists, tell the service operators.',
  untrusted: 'Use a certificate from a certification authority this service trusts, or sign in another way.',
  expired: 'Renew your certificate, or sign in another way.',
  not_yet_valid: 'Check your computer\'s clock, or try again later.',
  revoked: 'This certificate can no longer be used. Get a new one from your certification authority, or sign in another way.',
  revocation_unknown: 'Whether the certificate is still valid cannot be checked right now. Try again later or sign in another way.',
  constraint_violation: 'This certificate is not meant for signing in. Use your personal certificate.',
  weak_algorithm: 'This certificate uses a key or signature algorithm that is no longer safe. Get a new certificate (or proxy) from your certification authority.',
  invalid_proxy: 'Create a new proxy certificate, or use your own certificate.',
  not_linked: 'Sign in another way, then link this certificate to your account from your account page. After that you can sign in with it.',
  account_disabled: 'Contact the service operators.',
  identity_taken: 'Sign in with the account it is linked to, or ask the service operators to move it.',
  not_signed_in: 'Sign in first, then come back to link your certificate.',
  interaction: 'Go back to the application and start signing in again.',
};

const TITLES: Partial<Record<X509RefusalReason, string>> = {
  no_certificate: 'No certificate',
  malformed: 'Unreadable certificate',
  not_linked: 'Certificate not linked',
  identity_taken: 'Certificate linked to another account',
  not_signed_in: 'Sign in first',
  interaction: 'Sign-in expired',
  invalid_request: 'Invalid request',
};

function statusFor(reason: X509RefusalReason): number {
  switch (reason) {
    case 'no_certificate':
    case 'malformed':
    case 'interaction':
    case 'invalid_request':
      return 400;
    case 'identity_taken':
      return 409;
    default:
      return 403;
  }
}

function problem(reason: X509RefusalReason, message: string, extra: Partial<Problem> = {}): Problem {
  return { status: statusFor(reason), reason, title: TITLES[reason] ?? 'Certificate refused', message, hint: HINTS[reason], ...extra };
}

/**
 * A refused certificate login or link: the OAuth-style JSON (with the
 * reason and the certificate's names) for clients that prefer it, the
 * certificate problem page (with its hint and a way back) for browsers.
 */
class CertificateRefusal extends FedgateError {
  readonly #problem: Problem;

  constructor(p: Problem) {
    super(p.status === 403 || p.status === 409 ? 'access_denied' : 'invalid_request', p.message, {
      status: p.status,
      expose: true,
      fields: { reason: p.reason, ...(p.subject ? { subject: p.subject } : {}), ...(p.issuer ? { issuer: p.issuer } : {}) },
    });
    this.#problem = p;
  }

  override page(nonce: string, requestId: string | undefined): string {
    return certificateProblemPage({ nonce, ...this.#problem, requestId });
  }
}

function answer(ctx: Context, p: Problem): void {
  respondWithError(ctx, new CertificateRefusal(p), { format: 'page-or-json' });
}

/**
 * Username for a just-in-time account: the CN folded to the characters
 * usernames allow (letters, digits, `.`, `_`, `@`, `-`), diacritics dropped.
 */
export function usernameFromName(name: string | undefined): string {
  const base = (name ?? '')
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9._@-]+/g, '.')
    .replace(/\.{2,}/g, '.')
    .replace(/^[._@-]+|[._@-]+$/g, '')
    .slice(0, 40)
    .replace(/[._@-]+$/, '');
  return base || 'x509-user';
}

/** Builds the middleware answering every path under `/x509/`. */
export function x509Routes(deps: X509RoutesDeps): Middleware {
  const { audit, accounts, hooks, logger } = deps;
  const back = (uid: string) => (deps.interactionUrl ? { href: deps.interactionUrl(uid), label: 'Sign in another way' } : undefined);

  /** The validated certificate of the request, or what is wrong with it. */
  const certificate = (ctx: Context): { ok: true; verified: VerifiedCertificate; source: string } | { ok: false; problem: Problem; source?: string } => {
    const lookup = deps.inspect(ctx);
    if (lookup.status === 'malformed') return { ok: false, problem: problem('malformed', `The client certificate could not be read: ${lookup.message}.`), source: lookup.header };
    if (lookup.status === 'none') {
      return { ok: false, problem: problem('no_certificate', 'No client certificate was presented.') };
    }
    const { der, chain, source, header } = lookup.certificate;
    const where = source === 'tls' ? 'tls' : `header:${header}`;
    const result = deps.verify([der, ...(chain ?? [])]);
    if (!result.ok) {
      return { ok: false, source: where, problem: problem(result.reason, result.message, { subject: result.subject, issuer: result.issuer }) };
    }
    for (const warning of result.warnings) logger.warn({ subject: result.subject }, `X.509: ${warning}; accepted (crl.expired: warn)`);
    return { ok: true, verified: result, source: where };
  };

  const detailOf = (v: VerifiedCertificate, source: string) => ({
    method: 'x509', subject: v.subject, issuer: v.issuer, source,
    ...(v.proxies.length ? { proxies: v.proxies.length } : {}),
    ...(v.limited ? { limited: true } : {}),
  });

  /** A just-in-time account for a certificate nobody has linked (or the account another replica just made for it). */
  const createAccount = async (ctx: Context, v: VerifiedCertificate, source: string): Promise<Account> => {
    const base = usernameFromName(v.name);
    let account: Account | undefined;
    for (let attempt = 0; !account; attempt += 1) {
      const suffix = attempt === 0 ? '' : attempt < 10 ? `-${attempt + 1}` : `-${randomUUID().slice(0, 8)}`;
      try {
        account = await accounts.create({ username: `${base}${suffix}`, name: v.name, email: v.email });
      } catch (err) {
        if (!(err instanceof AccountError && err.code === 'username_taken') || attempt >= 20) throw err;
      }
    }
    try {
      await accounts.link(account.id, { type: 'x509', issuer: v.issuer, subject: v.subject });
    } catch (err) {
      if (!(err instanceof AccountError && err.code === 'identity_taken')) throw err;
      // Another replica created the account for this certificate at the same moment: use that one, retire ours.
      const owner = await accounts.findByIdentity('x509', v.issuer, v.subject);
      await accounts.setDisabled(account.id, true);
      logger.warn({ account: account.id, owner: owner?.id }, 'X.509: concurrent just-in-time account creation; the duplicate account was disabled');
      if (!owner) throw err;
      return owner;
    }
    await audit.record({ type: 'identity.linked', actor: account.id, outcome: 'success', ip: ctx.ip, target: account.id, detail: { ...detailOf(v, source), jit: true } });
    logger.info({ account: account.id, username: account.username }, 'X.509: account created at first certificate login');
    return account;
  };

  const login = async (ctx: Context) => {
    const uid = ctx.query.interaction;
    if (typeof uid !== 'string' || !UID.test(uid)) {
      await audit.record({ type: 'login.failed', actor: 'anonymous', outcome: 'failure', ip: ctx.ip, detail: { method: 'x509', reason: 'invalid_request' } });
      return answer(ctx, problem('invalid_request', 'The sign-in request is missing or invalid (no interaction).', { hint: HINTS.interaction }));
    }
    const cert = certificate(ctx);
    if (!cert.ok) {
      const p = cert.problem;
      await audit.record({
        type: 'login.failed', actor: 'anonymous', outcome: 'failure', ip: ctx.ip, target: p.subject,
        detail: { method: 'x509', reason: p.reason, ...(p.subject ? { subject: p.subject, issuer: p.issuer } : {}), ...(cert.source ? { source: cert.source } : {}) },
      });
      return answer(ctx, { ...p, back: back(uid) });
    }
    const v = cert.verified;
    const refuse = async (p: Problem) => {
      await audit.record({ type: 'login.failed', actor: 'anonymous', outcome: 'failure', ip: ctx.ip, target: v.subject, detail: { ...detailOf(v, cert.source), reason: p.reason } });
      answer(ctx, { ...p, subject: v.subject, issuer: v.issuer, back: p.reason === 'interaction' ? undefined : back(uid) });
    };
    let account = await accounts.findByIdentity('x509', v.issuer, v.subject);
    if (!account) {
      if (!deps.jit) {
        // No account yet and none made just in time: the person may ask for one (self-registration).
        if (await hooks.offerRegistration?.(ctx, { type: 'x509', issuer: v.issuer, subject: v.subject, name: v.name, email: v.email })) return;
        return refuse(problem('not_linked', 'This certificate is not linked to any account.'));
      }
      account = await createAccount(ctx, v, cert.source);
    }
    if (account.disabled) return refuse(problem('account_disabled', 'The account this certificate is linked to is disabled.'));
    try {
      await hooks.finishLogin(ctx, uid, account, 'x509');
    } catch (err) {
      const status = (err as { status?: number }).status ?? (err as { statusCode?: number }).statusCode;
      if (!status || status < 400 || status >= 500) throw err;
      return refuse(problem('interaction', 'This sign-in request has expired or was started in another browser.'));
    }
    await audit.record({ type: 'login', actor: account.id, outcome: 'success', ip: ctx.ip, target: account.id, detail: detailOf(v, cert.source) });
  };

  const link = async (ctx: Context) => {
    const account = await hooks.currentAccount(ctx);
    const refuse = async (p: Problem, actor = account?.id ?? 'anonymous') => {
      await audit.record({
        type: 'identity.link_refused', actor, outcome: 'failure', ip: ctx.ip, target: account?.id,
        detail: { method: 'x509', reason: p.reason, ...(p.subject ? { subject: p.subject, issuer: p.issuer } : {}) },
      });
      answer(ctx, p);
    };
    if (!account) return refuse(problem('not_signed_in', 'You need to be signed in to link a certificate to your account.'));
    const cert = certificate(ctx);
    if (!cert.ok) return refuse(cert.problem);
    const v = cert.verified;
    const identity = { type: 'x509' as const, issuer: v.issuer, subject: v.subject };
    const already = account.identities.some((i) => i.type === 'x509' && i.issuer === v.issuer && i.subject === v.subject);
    try {
      await accounts.link(account.id, identity);
    } catch (err) {
      if (err instanceof AccountError && err.code === 'identity_taken') {
        return refuse(problem('identity_taken', 'This certificate is already linked to another account.', { subject: v.subject, issuer: v.issuer }));
      }
      throw err;
    }
    await audit.record({
      type: 'identity.linked', actor: account.id, outcome: 'success', ip: ctx.ip, target: account.id,
      detail: { ...detailOf(v, cert.source), ...(already ? { already: true } : {}) },
    });
    sendPage(ctx, (nonce) => certificateLinkedPage({ nonce, accountName: account.name ?? account.username, subject: v.subject, issuer: v.issuer, already }));
  };

  return async (ctx: Context, next: Next) => {
    if (!deps.enabled || !ctx.path.startsWith(X509_PREFIX)) return next();
    const handler = ctx.path === LOGIN_PATH ? login : ctx.path === LINK_PATH ? link : undefined;
    if (!handler) {
      return answer(ctx, { ...problem('invalid_request', 'There is no such page.'), status: 404, title: 'Not found', hint: undefined });
    }
    // GET only: these requests log in and link, which a HEAD must not do.
    if (ctx.method !== 'GET') {
      ctx.set('Allow', 'GET');
      return answer(ctx, { ...problem('invalid_request', `${ctx.method} is not allowed here.`), status: 405, hint: undefined });
    }
    await handler(ctx);
  };
}
