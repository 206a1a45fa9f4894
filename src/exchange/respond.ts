/**
 * Exchange step 6, respond: the token response (RFC 8693 §2.2.1), what the
 * request leaves for the rest of the request (`ctx.state.tokenExchange`),
 * and the `token.exchanged` audit event.
 */
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Audit } from '../observability/audit.ts';
import type { ExchangePlan } from './decision.ts';
import type { Issued } from './issue.ts';
import type { Parties } from './parties.ts';
import type { ExchangeRequest } from './request.ts';
import { TOKEN_TYPE_URNS } from '../grants/token-types.ts';

export function respond(audit: Audit, ctx: KoaContextWithOIDC, request: ExchangeRequest, { subject, act, mode }: Parties, plan: ExchangePlan, issued: Issued): void {
  const { requested, clientId } = request;
  const { account } = subject;
  const { rs, granted, dropped, scope } = plan;
  ctx.body = {
    access_token: issued.value,
    issued_token_type: TOKEN_TYPE_URNS[requested],
    token_type: issued.tokenType,
    expires_in: issued.expiresIn,
    ...(granted.length && requested !== 'id_token' ? { scope: plan.wantsRefresh ? `offline_access ${scope}` : scope } : {}),
  };
  ctx.state.tokenExchange = { subject: account.id, act, audience: rs?.audience, granted, dropped, requested, mode };
  void audit.record({
    type: 'token.exchanged',
    actor: `client:${clientId}`,
    outcome: 'success',
    ip: ctx.ip,
    client: clientId,
    target: account.id,
    detail: {
      subject: { sub: account.id, username: account.username, iss: subject.iss, token_type: subject.type, client: subject.clientId },
      act: act ?? null,
      mode,
      audience: rs?.audience ?? null,
      requested_token_type: requested,
      scopes_granted: granted,
      scopes_dropped: dropped,
      expires_in: issued.expiresIn,
    },
  });
}
