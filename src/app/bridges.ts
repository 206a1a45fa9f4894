/**
 * Assembly step 2: the identity bridges (X.509 certificates, SAML
 * institutions) and what the rest of fedgate asks of them: the client
 * certificate of a request, and the other ways to sign in or link an account.
 */
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { federationHooks } from '../federation/hooks.ts';
import { createSamlBridge } from '../federation/saml/index.ts';
import { createX509Bridge } from '../federation/x509/index.ts';
import type { ProviderDeps } from '../oidc/provider.ts';
import type { Core } from './core.ts';

type SamlBridge = Awaited<ReturnType<typeof createSamlBridge>>;
type X509Bridge = Awaited<ReturnType<typeof createX509Bridge>>;
type Link = { href: string; label: string };

export interface Bridges {
  x509: X509Bridge;
  saml: SamlBridge;
  hooks: ReturnType<typeof federationHooks>;
  /** The client certificate of a request, for the provider (RFC 8705), when the X.509 bridge is enabled. */
  clientCertificates: ProviderDeps['clientCertificates'];
  /** The other ways to sign in offered on the login page of interaction `uid`, and where an `idp` hint goes at once. */
  loginOptions(uid: string, params: Record<string, unknown>): { alternatives: Link[]; redirect: string | undefined };
  /** The identities the account page offers to link. */
  linkOptions(): Link[];
}

/** Builds both bridges; they finish logins through the provider, which they reach lazily (it is rebuilt on key rotation). */
export async function createBridges(core: Core, provider: () => Provider): Promise<Bridges> {
  const { config, store, logger, audit, accounts, groups } = core;
  const hooks = federationHooks({
    store, accounts, provider,
    selfRegistration: config.registration.accounts.enabled, secureCookies: new URL(config.issuer).protocol === 'https:',
  });
  const x509 = await createX509Bridge({ config, logger, audit, accounts, hooks });
  const saml = await createSamlBridge({ config, store, logger, audit, accounts, groups, hooks });
  return {
    x509, saml, hooks,
    clientCertificates: config.x509.enabled ? {
      pem: (ctx: Context) => x509.clientCertificatePem(ctx),
      authorized: (ctx: Context) => x509.certificateAuthorized(ctx),
      subjectMatches: (ctx: Context, property: string, expected: string) => x509.certificateSubjectMatches(ctx, property, expected),
    } : undefined,
    loginOptions: (uid, params) => {
      const alternatives: Link[] = [];
      if (saml.enabled) alternatives.push({ href: saml.discoveryUrl({ interaction: uid }), label: 'Your institution (eduGAIN / SAML)' });
      if (config.x509.enabled) alternatives.push({ href: x509.loginUrl(uid), label: 'Your certificate (X.509)' });
      // An `idp` hint in the authorization request skips the choice (the discovery page checks it is known).
      const idp = identityProviderHint(params);
      const redirect = saml.enabled && idp ? `${saml.discoveryUrl({ interaction: uid })}&idp=${encodeURIComponent(idp)}` : undefined;
      return { alternatives, redirect };
    },
    linkOptions: () => [
      ...(saml.enabled ? [{ href: saml.discoveryUrl({ link: true }), label: 'An institution account (eduGAIN / SAML)' }] : []),
      ...(config.x509.enabled ? [{ href: x509.linkUrl(), label: 'A certificate (X.509)' }] : []),
    ],
  };
}

/**
 * The identity provider an authorization request names: `idp`, else
 * AARC-G061's `idp_hint` when it names exactly one (a list of several leaves
 * the choice to the discovery page).
 */
function identityProviderHint(params: Record<string, unknown>): string | undefined {
  if (typeof params.idp === 'string' && params.idp) return params.idp;
  if (typeof params.idp_hint !== 'string' || !params.idp_hint) return undefined;
  const hints = params.idp_hint.split(',').map((h) => h.trim()).filter(Boolean);
  return hints.length === 1 ? hints[0] : undefined;
}
