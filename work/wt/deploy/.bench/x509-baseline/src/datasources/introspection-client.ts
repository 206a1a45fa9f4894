/**
 * A data source's own OAuth client for the introspection endpoint (RFC 7662
 * §2.1: the protected resource authenticates to introspect). It is a
 * confidential client (client_secret_basic) with no grant and no response
 * type: it can authenticate, never obtain a token. It lives where
 * oidc-provider keeps dynamically registered clients (`oidc:Client:<id>`),
 * which `Client.find` reads from the store on every request — so a removal
 * or a new secret applies on every replica at once.
 */
import { randomBytes } from 'node:crypto';
import type Provider from 'oidc-provider';
import type { ClientMetadata } from 'oidc-provider';
import { StoreAdapter } from '../oidc/adapter.ts';
import type { Store } from '../store/store.ts';

/** What the data source's operator gets once: the client's id and secret. */
export interface IntrospectionCredentials {
  client_id: string;
  client_secret: string;
}

function metadata(clientId: string, secret: string, label: string): ClientMetadata {
  return {
    client_id: clientId,
    client_secret: secret,
    client_name: `${label} (token introspection)`,
    application_type: 'web',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  };
}

/** Clients are stored without expiry, as oidc-provider's registration does (its upsert passes none). */
const NO_EXPIRY = undefined as unknown as number;

/** A fresh secret: 256 bits, base64url. */
function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** Creates the introspection client of data source `name`; the secret is returned, never logged or kept elsewhere. */
export async function createIntrospectionClient(provider: Provider, store: Store, name: string, label: string): Promise<IntrospectionCredentials> {
  const adapter = new StoreAdapter('Client', store);
  let clientId: string;
  do clientId = `introspect-${name}-${randomBytes(4).toString('hex')}`;
  while (await provider.Client.find(clientId));
  const secret = newSecret();
  const client = metadata(clientId, secret, label);
  // The provider's own validation of client metadata, as for a registration.
  await provider.Client.validate(client);
  await adapter.upsert(clientId, client as never, NO_EXPIRY);
  return { client_id: clientId, client_secret: secret };
}

/** Gives the client a new secret (the old one stops working at once). */
export async function rotateIntrospectionSecret(provider: Provider, store: Store, clientId: string, label: string): Promise<IntrospectionCredentials> {
  const secret = newSecret();
  const client = metadata(clientId, secret, label);
  await provider.Client.validate(client);
  await new StoreAdapter('Client', store).upsert(clientId, client as never, NO_EXPIRY);
  return { client_id: clientId, client_secret: secret };
}

/**
 * Deletes the client. It never held a grant, so no token of its own can
 * exist; from now on it cannot authenticate to introspect.
 */
export async function deleteIntrospectionClient(store: Store, clientId: string): Promise<void> {
  await new StoreAdapter('Client', store).destroy(clientId);
}
