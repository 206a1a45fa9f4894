/**
 * Exchange step 2, resolve subject and actor: the presented tokens verified,
 * the user the subject token speaks for, who acts (the actor token's
 * subject, or the client itself) and the resulting actor chain (RFC 8693
 * §4.1, §4.4).
 */
import { errors } from 'oidc-provider';
import type { Account } from '../accounts/accounts.ts';
import { tokenRefusal } from '../accounts/aup.ts';
import type { Config } from '../config/schema.ts';
import { invalidGrant } from './errors.ts';
import { TokenRefused } from '../tokens/own-tokens.ts';
import { TokenTypeMismatch, type ActorClaim, type PresentedToken, type PresentedTokens } from './presented-token.ts';
import type { ExchangeRequest } from './request.ts';
import { tokenTypeName } from '../grants/token-types.ts';

/** Impersonation (no actor token: the client acts as the user) or delegation (an actor token: recorded in `act`). */
export type Mode = 'delegate' | 'impersonate';

/** A subject token that speaks for a user of this server. */
export type Subject = PresentedToken & { account: Account };

/** Who the exchange is for and who acts. */
export interface Parties {
  subject: Subject;
  /** The new token's `act` chain: the actor on top of the subject token's own chain. */
  act: ActorClaim | undefined;
  mode: Mode;
}

/** Verifies a presented token of the declared type; refusals become the grant's errors. */
async function present(tokens: PresentedTokens, value: string, typeParam: unknown, role: 'subject' | 'actor', clientId: string): Promise<PresentedToken> {
  const declared = tokenTypeName(typeParam);
  if (!declared) throw new errors.InvalidRequest(`unsupported ${role}_token_type`);
  if (role === 'actor' && declared === 'refresh_token') throw new errors.InvalidRequest('actor_token_type must be an access token, ID token or JWT');
  try {
    return await tokens.resolve(value, declared, clientId);
  } catch (err) {
    if (err instanceof TokenTypeMismatch) throw new errors.InvalidRequest(`${role}_token_type does not match the ${role}_token: ${err.message}`);
    if (err instanceof TokenRefused) throw invalidGrant(`${role}_token: ${err.message}`);
    throw err;
  }
}

function depth(act: ActorClaim | undefined): number {
  let n = 0;
  for (let a = act; a; a = a.act) n += 1;
  return n;
}

/** The actor a token names as it would appear in `act` (RFC 8693 §4.1: `sub`, and `iss` when not this issuer's). */
function actorOf(token: PresentedToken, issuer: string): ActorClaim {
  return { sub: token.sub, ...(token.iss !== issuer ? { iss: token.iss } : {}) };
}

/**
 * Resolves the subject and actor tokens of `request`.
 *
 * @throws InvalidGrant when a token is unusable, speaks for no user (or one who may get no token now), belongs to another client or names another actor; InvalidRequest for a chain too long.
 */
export async function resolveParties(tokens: PresentedTokens, request: ExchangeRequest, config: Pick<Config, 'issuer' | 'aup' | 'tokenExchange'>): Promise<Parties> {
  const { issuer, aup } = config;
  const { maxDelegationDepth } = config.tokenExchange;
  const { clientId } = request;
  const [subject, actor] = await Promise.all([
    present(tokens, request.subjectToken, request.subjectTokenType, 'subject', clientId),
    request.actor ? present(tokens, request.actor.token, request.actor.type, 'actor', clientId) : undefined,
  ]);
  if (!subject.account) throw invalidGrant('subject_token: the token does not speak for a user of this server');
  const refusal = tokenRefusal(subject.account, aup);
  if (refusal) throw invalidGrant(`subject_token: ${refusal}`);
  // A token of this server's speaks for its client only when that client presents it: no one acts under another client's name.
  if (actor && actor.origin === 'fedgate' && actor.sub !== clientId && actor.clientId !== clientId) {
    throw invalidGrant('actor_token: the token belongs to another client');
  }

  // RFC 8693 §4.4: the subject token may say who may act for it.
  const acting: ActorClaim = actor ? actorOf(actor, issuer) : { sub: clientId };
  if (subject.mayAct && (subject.mayAct.sub !== acting.sub || (subject.mayAct.iss ?? issuer) !== (acting.iss ?? issuer))) {
    throw invalidGrant('subject_token: its may_act claim does not name this actor');
  }
  const mode = actor ? 'delegate' : 'impersonate';
  const act: ActorClaim | undefined = actor ? { ...acting, ...(subject.act ? { act: subject.act } : {}) } : subject.act;
  if (depth(act) > maxDelegationDepth) throw new errors.InvalidRequest('the delegation chain is too long');
  return { subject: subject as Subject, act, mode };
}
