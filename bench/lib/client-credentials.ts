/**
 * The OAuth 2.0 client credentials token request (client_secret_basic), as
 * the load of the token issuance benchmark and as the way other benchmarks
 * get a real access token before their load.
 */
import type { LoadRequest } from './load.ts';

/** Who asks, and for what. */
export interface ClientCredentials {
  clientId: string;
  clientSecret: string;
  /** RFC 8707 resource indicator: the audience of the token. */
  resource: string;
  scope: string;
}

/** The form body of the request (also shown in benchmark descriptions). */
export function clientCredentialsBody(client: ClientCredentials): string {
  return new URLSearchParams({ grant_type: 'client_credentials', resource: client.resource, scope: client.scope }).toString();
}

/** `POST <baseUrl>/token` with HTTP Basic client authentication (RFC 6749 §2.3.1: both parts form-encoded). */
export function clientCredentialsRequest(baseUrl: string, client: ClientCredentials): LoadRequest {
  const basic = Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString('base64');
  return {
    url: `${baseUrl}/token`,
    method: 'POST',
    headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: clientCredentialsBody(client),
  };
}
