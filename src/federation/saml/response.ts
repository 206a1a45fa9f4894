/**
 * Checking a SAML Response that arrived at the ACS (SAML profiles §4.1.4.3
 * and §4.1.4.5), in three steps: the worker pool inspects the document
 * (response-checks.ts inspectResponse: limits, well-formedness, what it
 * answers); this module finds the request it answers in the store and
 * checks the issuers against it; the worker pool verifies the signature and
 * conditions (verifyResponse); then this module consumes the request and
 * records the assertion ID, each once. Nothing here reads the document on
 * the event loop.
 */
import { createHash } from 'node:crypto';
import type { Store } from '../../store/store.ts';
import type { StoreCacheProvider } from './cache-provider.ts';
import type { IdpRecord } from './metadata.ts';
import { SamlResponseError } from './response-checks.ts';
import type { AssertionStatements } from './attributes.ts';
import type { ServiceProvider } from './service-provider.ts';
import type { ValidationPool } from './validation-pool.ts';

export { SamlResponseError, type RejectReason } from './response-checks.ts';

/** Why a login was started, kept with the request it sent. */
export type Purpose = { kind: 'login'; interaction: string } | { kind: 'link'; accountId: string };

/** What the store keeps per sent AuthnRequest, under its RelayState. */
export interface RequestContext {
  requestId: string;
  idp: string;
  purpose: Purpose;
  /** The browser that started it (a random id in an HttpOnly cookie). */
  browser: string;
  createdAt: number;
}

/** A response that passed every check. */
export interface AcceptedResponse {
  context: RequestContext;
  idp: IdpRecord;
  assertionId: string;
  statements: AssertionStatements;
}

/** Store key of a RelayState's request context. */
export const relayKey = (relayState: string) => `saml:relay:${relayState}`;
/** Store key remembering an accepted assertion (SAML profiles §4.1.4.5: one use only). */
export const assertionKey = (idp: string, assertionId: string) =>
  `saml:assertion:${createHash('sha256').update(`${idp}\n${assertionId}`).digest('base64url')}`;

const RELAY_STATE = /^[A-Za-z0-9_-]{43}$/;
const MAX_REPLAY_TTL_SECONDS = 24 * 3600;

/** Options of {@link ResponseValidator}. */
export interface ResponseValidatorOptions {
  store: Store;
  sp: ServiceProvider;
  cacheProvider: StoreCacheProvider;
  /** Where the document checks run: the worker pool (an in-thread stand-in only in benchmarks' baselines). */
  pool: Pick<ValidationPool, 'inspect' | 'verify'>;
  /** The trusted identity provider with this entityID, if any. */
  idp: (entityID: string) => IdpRecord | undefined;
  clockSkewSeconds: number;
  requireSignedAssertions: boolean;
  allowSha1: boolean;
  now?: () => number;
}

/** Checks responses at the ACS; see the module comment. */
export class ResponseValidator {
  readonly #o: ResponseValidatorOptions;
  readonly #now: () => number;

  constructor(options: ResponseValidatorOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Checks `samlResponse` (the base64 form field) that came with
   * `relayState`, and consumes the request it answers: each request, and
   * each assertion, is accepted once.
   *
   * @throws SamlResponseError
   */
  async validate(samlResponse: string, relayState: string | undefined): Promise<AcceptedResponse> {
    const { store, pool } = this.#o;
    const inspected = await pool.inspect(samlResponse);
    const { responseIssuer, assertionId, assertionIssuer } = inspected;

    // A replay is recognised before anything is consumed: the ID is only ever stored once it was verified.
    if (assertionId && await store.get(assertionKey(assertionIssuer ?? responseIssuer ?? '', assertionId)) !== undefined) {
      throw new SamlResponseError('replayed', 'this assertion was already used', assertionIssuer ?? responseIssuer);
    }
    if (relayState === undefined || !RELAY_STATE.test(relayState)) {
      throw new SamlResponseError('unknown_request', 'the response carries no RelayState of this service', responseIssuer);
    }
    const context = await store.get<RequestContext>(relayKey(relayState));
    if (!context) throw new SamlResponseError('unknown_request', 'the request this response answers is unknown or has expired', responseIssuer);

    try {
      if (inspected.inResponseTo !== context.requestId) {
        throw new SamlResponseError('in_response_to_mismatch', 'the response answers another request', context.idp);
      }
      for (const issuer of [responseIssuer, assertionIssuer]) {
        if (issuer === undefined || issuer === context.idp) continue;
        throw new SamlResponseError(this.#o.idp(issuer) ? 'issuer_mismatch' : 'unknown_idp', 'the response comes from another identity provider than the one asked', context.idp);
      }
      const idp = this.#o.idp(context.idp);
      if (!idp) throw new SamlResponseError('unknown_idp', 'the identity provider is no longer trusted', context.idp);
      const verified = await pool.verify({
        samlResponse,
        sp: { entityId: this.#o.sp.entityId, acsUrl: this.#o.sp.acsUrl },
        idp: { entityID: idp.entityID, signingCertificates: idp.signingCertificates },
        request: { requestId: context.requestId, idp: context.idp },
        clockSkewSeconds: this.#o.clockSkewSeconds,
        requireSignedAssertions: this.#o.requireSignedAssertions,
        allowSha1: this.#o.allowSha1,
        now: this.#now(),
      });
      // Remembered until it could no longer be accepted anyway (NotOnOrAfter plus the skew).
      const ttl = Math.min(MAX_REPLAY_TTL_SECONDS, Math.max(1, Math.ceil((verified.expires + this.#o.clockSkewSeconds * 1000 - this.#now()) / 1000)));
      if (!(await store.setIfAbsent(assertionKey(context.idp, verified.assertionId), { at: this.#now() }, ttl))) {
        throw new SamlResponseError('replayed', 'this assertion was already used', context.idp);
      }
      // Two copies of one response racing: only one of them consumes the request.
      if (!(await store.delete(relayKey(relayState)))) throw new SamlResponseError('replayed', 'this request was already answered', context.idp);
      await this.#o.cacheProvider.removeAsync(context.requestId);
      return { context, idp, assertionId: verified.assertionId, statements: verified.statements };
    } catch (err) {
      // A request is answered once: whatever failed, it cannot be retried with another response.
      await Promise.all([store.delete(relayKey(relayState)), this.#o.cacheProvider.removeAsync(context.requestId)]);
      throw err;
    }
  }
}
