/**
 * Exchange step 4, grant: the client's own grant for the exchanged token,
 * tied to the subject's grant(s) so that revoking them (or disabling the
 * account) ends everything exchanged from them; reused for access tokens
 * while it lives. Its record keeps the actor chain for later refreshes.
 */
import { randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import { EXCHANGED_GRANT_PREFIX, linkChildGrant } from '../grants/grants.ts';
import type { ExchangedTokenClaims } from '../oidc/token-exchange-seam.ts';
import type { Store } from '../store/store.ts';
import { BoundedMap } from '../util/bounded-map.ts';
import type { ExchangePlan } from './decision.ts';
import { invalidGrant } from './errors.ts';
import type { Parties } from './parties.ts';
import { exchangeRecordKey, type ActorClaim } from './presented-token.ts';
import type { ExchangeRequest } from './request.ts';

/** Exchanged grants remembered for reuse per replica. */
const CHILD_GRANT_CACHE_SIZE = 10_000;

const now = () => Math.floor(Date.now() / 1000);

/** The stored record of an exchanged grant. */
interface ExchangeRecord {
  act?: ActorClaim;
  subject: { iss: string; sub: string; client?: string };
}

/** Claims an exchanged token carries beyond its profile's: the actor chain and the mark the gateway checks revocation by. */
export interface ExchangeClaims extends ExchangedTokenClaims {
  act?: ActorClaim;
}

/** The exchange claims of tokens issued later from grant `grantId` (refreshes of an exchanged refresh token). */
export async function exchangeClaimsFor(store: Store, grantId: string | undefined): Promise<ExchangeClaims | undefined> {
  if (!grantId) return undefined;
  const record = await store.get<ExchangeRecord>(exchangeRecordKey(grantId));
  if (!record) return undefined;
  return { ...(record.act ? { act: record.act } : {}), exchanged: true };
}

/** Makes (or reuses) exchanged grants. */
export class ExchangedGrants {
  readonly #provider: Provider;
  readonly #store: Store;
  /** Grants of recent access token exchanges, by everything that made them. */
  readonly #recent = new BoundedMap<string, { id: string; exp: number }>(CHILD_GRANT_CACHE_SIZE);

  constructor(provider: Provider, store: Store) {
    this.#provider = provider;
    this.#store = store;
  }

  /**
   * The grant id the exchanged token goes under.
   *
   * @throws InvalidGrant when the subject's grant was revoked while the exchange ran.
   */
  async grantFor(request: ExchangeRequest, { subject, act }: Parties, plan: ExchangePlan): Promise<string> {
    const { requested, clientId } = request;
    const { account } = subject;
    const reuseKey = requested === 'access_token' || requested === 'jwt'
      ? `${account.id}\u0000${clientId}\u0000${subject.grantIds.length > 1 ? [...subject.grantIds].sort().join(' ') : subject.grantIds[0] ?? ''}\u0000${subject.iss}`
        + `\u0000${act ? JSON.stringify(act) : ''}\u0000${plan.audience}\u0000${plan.scope}\u0000${subject.offlineAccess}`
      : undefined;
    const reusable = reuseKey ? this.#recent.get(reuseKey) : undefined;
    // No store read: an exchanged grant goes only with the grants it came from (checked live above) or the account (checked too).
    if (reusable && reusable.exp >= now() + plan.accessTtl) return reusable.id;
    const store = this.#store;
    // A grant of its own for the client, tied to the subject's grant(s); offline_access passes on, for a later hop's refresh token.
    const grant = new this.#provider.Grant({ accountId: account.id, clientId });
    grant.jti = `${EXCHANGED_GRANT_PREFIX}${randomBytes(32).toString('base64url')}`;
    if (plan.rs && plan.granted.length) grant.addResourceScope(plan.rs.audience, plan.scope);
    grant.addOIDCScope(subject.offlineAccess ? 'openid offline_access' : 'openid');
    grant.exp = now() + plan.grantTtl;
    const grantId = await grant.save();
    const record: ExchangeRecord = { ...(act ? { act } : {}), subject: { iss: subject.iss, sub: subject.sub, ...(subject.clientId ? { client: subject.clientId } : {}) } };
    const [, linked] = await Promise.all([
      store.set(exchangeRecordKey(grantId), record, plan.grantTtl),
      linkChildGrant(store, subject.grantIds, grantId, plan.grantTtl),
    ]);
    if (!linked) {
      // The subject's grant was revoked while this exchange ran: nothing may come of it.
      await Promise.all([grant.destroy(), store.delete(exchangeRecordKey(grantId))]);
      throw invalidGrant('subject_token: the grant behind the token has been revoked');
    }
    if (reuseKey) this.#recent.set(reuseKey, { id: grantId, exp: grant.exp });
    return grantId;
  }
}
