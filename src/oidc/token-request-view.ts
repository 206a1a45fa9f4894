/**
 * What a token request may ask beyond the letter of its grant, and the view
 * of the grant that lets oidc-provider issue it.
 *
 * oidc-provider matches scopes and resource indicators of a token request
 * against the presented artifact (refresh token, device code, code) and its
 * grant by exact string. Two requests of the WLCG world need more, and are
 * decided here, once, before oidc-provider runs:
 *
 * - **A narrower storage path at refresh** (`oidc-token -s
 *   storage.read:/store/cms/run1` on a grant of `storage.read:/store/cms`):
 *   allowed when a granted path scope of the same capability covers it
 *   (`scopeCovered`), as issuance and token exchange allow. Never wider.
 * - **A resource named only at the token endpoint** (oidc-agent sends
 *   `audience` with the token request, never with the authorization): when
 *   the grant was made for no particular resource server or for the WLCG
 *   "any" audience (WLCG profile §2.1.3: a token any WLCG service accepts),
 *   a token for one named server is a narrowing, with the granted scopes
 *   that server accepts. A grant for a particular server is not widened to
 *   another; the refusal says so.
 *
 * For such a request the artifact and its grant are *seen* (through the
 * store adapter, inside this request's async context only) with the narrower
 * scopes and the extra resource added; everything else — client
 * authentication, expiry, consumption and rotation, reuse detection, DPoP and
 * certificate bindings, the scope policy in getResourceServerInfo — stays
 * oidc-provider's and fedgate's usual path. Nothing is stored widened: a
 * refresh token written during the request gets the artifact's own scope and
 * resources back, except that a resource named at the first redemption of a
 * code or device code (a narrowing of an "any" grant) is kept by the grant
 * and its refresh token. oidc-provider offers no hook for this; it is written
 * here.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { ParsedUrlQuery } from 'node:querystring';
import type Provider from 'oidc-provider';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { isPathScope, scopeCovered } from '../scopes/wlcg.ts';
import type { ResourceServers } from '../resource-servers/resource-servers.ts';
import { WLCG_ANY_AUDIENCE } from '../config/names.ts';

/** What one token request sees differently from the stored artifact and grant. */
export interface TokenRequestView {
  model: 'RefreshToken' | 'DeviceCode' | 'AuthorizationCode';
  /** The artifact's id (its value: fedgate's artifacts are opaque). */
  id: string;
  grantId: string;
  /** The artifact's own scope and resource, restored on any refresh token written in the request. */
  original: { scope: string | undefined; resource: string | string[] | undefined };
  /** Narrower path scopes of granted ones. */
  narrower: string[];
  /** Resource servers added, with the granted scopes each accepts. */
  resources: Map<string, string[]>;
  /**
   * Named at the first redemption (code, device code): the grant keeps them,
   * and the refresh token is for them from then on (as INDIGO IAM keeps the
   * audience of the first token request; oidc-agent sends `--aud` of
   * oidc-gen only then).
   */
  persist: boolean;
}

const current = new AsyncLocalStorage<TokenRequestView>();

const ARTIFACTS: Record<string, { model: TokenRequestView['model']; param: string }> = {
  refresh_token: { model: 'RefreshToken', param: 'refresh_token' },
  'urn:ietf:params:oauth:grant-type:device_code': { model: 'DeviceCode', param: 'device_code' },
  authorization_code: { model: 'AuthorizationCode', param: 'code' },
};

const list = (value: string | string[] | undefined): string[] =>
  (Array.isArray(value) ? value : value === undefined || value === '' ? [] : [value]);

/**
 * Decides what a token request (its form parameters, after
 * `audience` became `resource`) may see beyond its grant. Answers nothing
 * when oidc-provider's own matching is all it needs (or when the artifact is
 * unknown: oidc-provider refuses that itself), or an `invalid_target`
 * description when it asks for a resource server the grant cannot reach.
 */
export async function tokenRequestView(
  provider: Provider, resourceServers: ResourceServers, params: ParsedUrlQuery,
): Promise<{ view?: TokenRequestView; error?: string }> {
  const artifact = typeof params.grant_type === 'string' ? ARTIFACTS[params.grant_type] : undefined;
  const value = artifact ? params[artifact.param] : undefined;
  if (!artifact || typeof value !== 'string' || !value) return {};
  const requestedResources = [...new Set(list(params.resource))];
  // Only a refresh may ask a narrower scope (a code or device code is redeemed for what was authorized).
  const requestedScopes = artifact.model === 'RefreshToken' && typeof params.scope === 'string' ? params.scope.split(' ').filter(Boolean) : [];
  if (!requestedResources.length && !requestedScopes.some(isPathScope)) return {};

  type Artifact = { grantId?: string; scope?: string; resource?: string | string[] };
  const model = provider[artifact.model] as unknown as { find(value: string): Promise<Artifact | undefined> };
  const found = await model.find(value).catch(() => undefined);
  if (!found?.grantId) return {};
  const granted = (found.scope ?? '').split(' ').filter(Boolean);
  const narrower = requestedScopes.filter((s) => !granted.includes(s) && isPathScope(s) && scopeCovered(s, granted));
  const originalResources = list(found.resource);
  const resources = new Map<string, string[]>();
  for (const resource of requestedResources) {
    if (originalResources.includes(resource)) continue;
    const rs = resourceServers.get(resource);
    if (!rs) continue; // oidc-provider answers invalid_target for an unknown one
    if (originalResources.length && !originalResources.includes(WLCG_ANY_AUDIENCE)) {
      return { error: `the grant is for ${originalResources.join(', ')}, not ${resource}: sign in again naming ${resource} (resource or audience)` };
    }
    const accepted = resourceServers.acceptedScopes(rs, [...granted, ...narrower]);
    if (!accepted.length) return { error: `the grant holds no scope that ${resource} accepts` };
    resources.set(resource, accepted);
  }
  if (!narrower.length && !resources.size) return {};
  const persist = artifact.model !== 'RefreshToken' && resources.size > 0;
  if (persist) {
    // A narrowing of a grant for any WLCG service (or none) to the named ones: kept for the grant's later refreshes.
    const grant = await provider.Grant.find(found.grantId).catch(() => undefined);
    if (!grant) return {};
    for (const [resource, scopes] of resources) grant.addResourceScope(resource, scopes.join(' '));
    await grant.save();
  }
  return {
    view: {
      model: artifact.model, id: value, grantId: found.grantId,
      original: { scope: found.scope, resource: found.resource }, narrower, resources, persist,
    },
  };
}

/** Runs `fn` (the rest of the request) with `view` in effect. */
export function withTokenRequestView<T>(view: TokenRequestView, fn: () => T): T {
  return current.run(view, fn);
}

/** The artifact as the request sees it: narrower scopes and added resources included. */
function viewArtifact(view: TokenRequestView, payload: AdapterPayload): AdapterPayload {
  const scopes = new Set([...(payload.scope ?? '').split(' ').filter(Boolean), ...view.narrower]);
  const resources = [...new Set([...list(payload.resource as string | string[] | undefined), ...view.resources.keys()])];
  return { ...payload, scope: [...scopes].join(' '), ...(resources.length ? { resource: resources.length === 1 ? resources[0]! : resources } : {}) };
}

/** The grant as the request sees it: per-resource scopes with the narrower ones and the added servers. */
function viewGrant(view: TokenRequestView, payload: AdapterPayload): AdapterPayload {
  const resources: Record<string, string> = { ...(payload.resources as Record<string, string> | undefined) };
  for (const [resource, scopes] of view.resources) resources[resource] = scopes.join(' ');
  for (const [resource, scope] of Object.entries(resources)) {
    const scopes = scope.split(' ').filter(Boolean);
    const extra = view.narrower.filter((n) => !scopes.includes(n) && scopeCovered(n, scopes));
    if (extra.length) resources[resource] = [...scopes, ...extra].join(' ');
  }
  return { ...payload, resources };
}

/**
 * Wraps the store adapter factory: inside a request with a view, the
 * artifact and its grant are read as the view says, and a refresh token of
 * that grant is written with the artifact's own scope and resources.
 */
export function viewingAdapterFactory(factory: (model: string) => Adapter): (model: string) => Adapter {
  return (model) => {
    const inner = factory(model);
    if (model !== 'Grant' && model !== 'RefreshToken' && model !== 'DeviceCode' && model !== 'AuthorizationCode') return inner;
    return {
      upsert: (id, payload, expiresIn) => {
        const view = current.getStore();
        if (view && model === 'RefreshToken' && payload.grantId === view.grantId) {
          const { resource: _resource, ...rest } = payload;
          const restored: AdapterPayload = { ...rest, scope: view.original.scope ?? '' };
          const named = [...view.resources.keys()];
          const resource = view.persist ? (named.length === 1 ? named[0] : named) : view.original.resource;
          if (resource !== undefined) restored.resource = resource as AdapterPayload['resource'];
          return inner.upsert(id, restored, expiresIn);
        }
        return inner.upsert(id, payload, expiresIn);
      },
      find: async (id) => {
        const payload = await inner.find(id);
        const view = current.getStore();
        if (!view || !payload) return payload;
        if (model === view.model && id === view.id) return viewArtifact(view, payload);
        if (model === 'Grant' && id === view.grantId) return viewGrant(view, payload);
        return payload;
      },
      findByUserCode: (userCode) => inner.findByUserCode(userCode),
      findByUid: (uid) => inner.findByUid(uid),
      consume: (id) => inner.consume(id),
      destroy: (id) => inner.destroy(id),
      revokeByGrantId: (grantId) => inner.revokeByGrantId(grantId),
    };
  };
}
