/**
 * Exchange step 1, parse: who asks (a confidential client allowed the
 * grant) and what it asks for (RFC 8693 §2.1).
 */
import { errors, type KoaContextWithOIDC } from 'oidc-provider';
import type { ClientConfig } from '../config/schema.ts';
import { tokenTypeName, type TokenTypeName } from '../grants/token-types.ts';

/** Request parameters of the grant (RFC 8693 §2.1); `audience` and `resource` may repeat. */
export const PARAMETERS = ['audience', 'resource', 'scope', 'requested_token_type', 'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type'];
export const REPEATABLE = ['audience', 'resource'];

type Client = NonNullable<KoaContextWithOIDC['oidc']['client']>;

/** A token exchange request, checked for form. */
export interface ExchangeRequest {
  client: Client;
  clientId: string;
  /** The client's configuration, when it is a configured client. */
  clientConfig: ClientConfig | undefined;
  subjectToken: string;
  subjectTokenType: string;
  /** The actor token and its declared type (delegation), when given. */
  actor: { token: string; type: unknown } | undefined;
  requested: TokenTypeName;
  /** Audiences and resources named (RFC 8693 §2.1, RFC 8707). */
  targets: string[];
  /** The `scope` parameter, when given. */
  scope: string | undefined;
}

/** The non-empty string values of a parameter that may repeat. */
function values(param: unknown): string[] {
  if (param === undefined) return [];
  return (Array.isArray(param) ? param : [param]).filter((v): v is string => typeof v === 'string' && v !== '');
}

/**
 * Reads the request of `ctx`.
 *
 * @throws UnauthorizedClient for a public client or one not allowed the grant; InvalidRequest for a malformed request.
 */
export function parseExchangeRequest(ctx: KoaContextWithOIDC, clientConfigOf: (clientId: string) => ClientConfig | undefined): ExchangeRequest {
  const params = ctx.oidc.params as Record<string, unknown>;
  const client = ctx.oidc.client!;
  const clientId = client.clientId;
  const clientConfig = clientConfigOf(clientId);
  // RFC 8693 §2.1: the client is authenticated; a public client cannot be trusted with someone else's token.
  if (client.clientAuthMethod === 'none') throw new errors.UnauthorizedClient('token exchange requires a confidential client');
  if (clientConfig && !clientConfig.grantTypes.includes('token_exchange')) throw new errors.UnauthorizedClient('the client is not allowed to use token exchange');

  if (typeof params.subject_token !== 'string' || !params.subject_token) throw new errors.InvalidRequest('missing required parameter(s) (subject_token)');
  if (typeof params.subject_token_type !== 'string') throw new errors.InvalidRequest('missing required parameter(s) (subject_token_type)');
  const hasActor = params.actor_token !== undefined;
  if (hasActor !== (params.actor_token_type !== undefined)) throw new errors.InvalidRequest('actor_token and actor_token_type go together');
  const requested: TokenTypeName = params.requested_token_type === undefined ? 'access_token' : tokenTypeName(params.requested_token_type)!;
  if (!requested) throw new errors.InvalidRequest('unsupported requested_token_type');
  return {
    client, clientId, clientConfig,
    subjectToken: params.subject_token,
    subjectTokenType: params.subject_token_type,
    actor: hasActor ? { token: String(params.actor_token), type: params.actor_token_type } : undefined,
    requested,
    targets: [...new Set([...values(params.audience), ...values(params.resource)])],
    scope: typeof params.scope === 'string' ? params.scope : undefined,
  };
}
