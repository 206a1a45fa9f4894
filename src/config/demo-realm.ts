import type { FileConfig } from './schema.ts';

/**
 * The documented demo realm fedgate runs with when no configuration file is
 * given and NODE_ENV is not `production`. Its names are a contract used by
 * README walkthroughs, tests and other tools: keep them exactly as they are.
 * Passwords are hashed at boot; they are demo credentials, not secrets.
 */
export function demoRealm(): Omit<FileConfig, 'users'> & { users: Array<FileConfig['users'][number] & { password: string }> } {
  return {
    trustProxy: false,
    keysDir: 'keys',
    keys: { prepublishSeconds: 2 * 24 * 3600, rotationIntervalSeconds: 182 * 24 * 3600, jwksMaxAgeSeconds: 6 * 3600 },
    logLevel: 'info',
    defaultProfile: 'wlcg',
    lifetimes: {
      accessToken: 3600,
      idToken: 3600,
      refreshToken: 30 * 24 * 3600,
      clientCredentials: 3600,
      authorizationCode: 60,
      deviceCode: 600,
      interaction: 3600,
      session: 14 * 24 * 3600,
      grant: 30 * 24 * 3600,
    },
    aarc: { entitlementNamespace: 'urn:geant:fedgate.demo', groupAuthority: 'fedgate.demo' },
    login: { maxFailures: 5, lockoutSeconds: 300 },
    shutdown: { timeoutSeconds: 10, idleCloseMs: 250 },
    store: { deadlineMs: 2000, retryAfterSeconds: 5 },
    audit: { maxEvents: 100_000, bufferBytes: 4 * 1024 * 1024 },
    registration: { enabled: true, initialAccessTokenTtl: 24 * 3600, accounts: { enabled: true } },
    groups: [
      { path: '/admins', description: 'fedgate administrators' },
      { path: '/cms', description: 'CMS collaboration' },
      { path: '/cms/production', description: 'CMS production managers' },
      { path: '/atlas', description: 'ATLAS collaboration', managers: ['bob'] },
      { path: '/ml-users', description: 'Users of the ML service' },
    ],
    trustedProxies: [],
    tokenExchange: { trustedIssuers: [], jwksCacheSeconds: 600, maxDelegationDepth: 8 },
    saml: { enabled: false, clockSkewSeconds: 180, requestTtlSeconds: 900, requireSignedAssertions: true, validation: { threads: 2, deadlineMs: 10000, maxQueue: 256 }, allowSha1Signatures: false, metadata: [], entityIds: { deny: [] }, jit: { default: true, idps: {} }, groupsAtLogin: 'add', attributes: { subject: ['urn:oasis:names:tc:SAML:attribute:subject-id', 'urn:oasis:names:tc:SAML:attribute:pairwise-id', 'urn:oid:1.3.6.1.4.1.5923.1.1.1.13', 'urn:oid:1.3.6.1.4.1.5923.1.1.1.10', 'urn:oid:1.3.6.1.4.1.5923.1.1.1.6'], subjectNameIdFormats: ['urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'], displayName: ['urn:oid:2.16.840.1.113730.3.1.241'], givenName: ['urn:oid:2.5.4.42'], surname: ['urn:oid:2.5.4.4'], email: ['urn:oid:0.9.2342.19200300.100.1.3'], entitlement: ['urn:oid:1.3.6.1.4.1.5923.1.1.1.7'] }, entitlementRules: [], rememberChoiceDays: 180 },
    x509: { enabled: false, reloadSeconds: 60, headerNames: { clientCert: 'client-cert', clientCertChain: 'client-cert-chain', envoy: 'x-forwarded-client-cert', nginx: 'x-ssl-client-cert' }, jit: false, proxyCertificates: true, crl: { missing: 'accept', expired: 'refuse', unusable: 'refuse' }, clockSkewSeconds: 300, algorithms: { allowSha1: false, minRsaBits: 2048 } },
    policies: { dir: 'policies', pollSeconds: 5 },
    gateway: {
      // Decision endpoint only (/authz?service=...): the demo has no upstreams to proxy to.
      services: [
        { name: 'orchestrator', audience: 'https://orchestrator.demo', hosts: [], authzHeaders: 'nginx', timeoutSeconds: 30, forwardToken: true },
        { name: 'data', audience: 'https://storage.demo', hosts: [], authzHeaders: 'nginx', timeoutSeconds: 30, forwardToken: true },
        { name: 'ml', audience: 'https://ml.demo', hosts: [], authzHeaders: 'nginx', timeoutSeconds: 30, forwardToken: true },
        { name: 'sync', audience: 'https://sync.demo', hosts: [], authzHeaders: 'nginx', timeoutSeconds: 30, forwardToken: true },
      ],
      tokenCacheSize: 100_000,
      maxBodyBytes: 0,
    },
    clients: [
      {
        clientId: 'demo-cli',
        name: 'Demo command line',
        applicationType: 'native',
        grantTypes: ['authorization_code', 'refresh_token', 'device_code'],
        redirectUris: ['http://127.0.0.1/callback', 'http://localhost/callback'],
        postLogoutRedirectUris: ['http://127.0.0.1/logged-out'],
        consentRequired: true,
      },
      {
        clientId: 'demo-portal',
        clientSecret: 'demo-portal-secret',
        name: 'Demo research portal',
        applicationType: 'web',
        // client_credentials: its own token is the actor_token when it hands a user's token on (RFC 8693 delegation).
        grantTypes: ['authorization_code', 'refresh_token', 'token_exchange', 'client_credentials'],
        redirectUris: ['http://localhost:3000/callback', 'http://127.0.0.1:3000/callback'],
        postLogoutRedirectUris: ['http://localhost:3000/', 'http://127.0.0.1:3000/'],
        consentRequired: true,
      },
      {
        clientId: 'demo-service',
        clientSecret: 'demo-service-secret',
        name: 'Demo platform service',
        applicationType: 'web',
        grantTypes: ['client_credentials', 'token_exchange'],
        redirectUris: [],
        postLogoutRedirectUris: [],
        consentRequired: false,
      },
      {
        // Acts for users it is handed by the portal (token exchange with delegation), e.g. reading input from storage.
        clientId: 'demo-orchestrator',
        clientSecret: 'demo-orchestrator-secret',
        name: 'Demo orchestrator',
        applicationType: 'web',
        grantTypes: ['client_credentials', 'token_exchange', 'refresh_token'],
        redirectUris: [],
        postLogoutRedirectUris: [],
        consentRequired: false,
      },
    ],
    resourceServers: [
      {
        audience: 'https://storage.demo',
        name: 'Demo storage',
        kind: 'storage',
        scopes: ['storage.read:/', 'storage.create:/', 'storage.modify:/', 'storage.stage:/', 'storage.poll:/'],
        profile: 'wlcg',
        accessTokenFormat: 'jwt',
        signingAlg: 'ES256',
      },
      {
        audience: 'https://orchestrator.demo',
        name: 'Demo orchestrator',
        kind: 'compute',
        // The orchestrator reads input and writes results for the user: its tokens may carry the storage
        // scopes it exchanges onward (RFC 8693) for storage tokens.
        scopes: ['compute.read', 'compute.modify', 'compute.create', 'compute.cancel', 'storage.read:/', 'storage.create:/', 'storage.modify:/', 'sync.read', 'sync.write'],
        profile: 'wlcg',
        accessTokenFormat: 'jwt',
        signingAlg: 'ES256',
      },
      {
        audience: 'https://ml.demo',
        name: 'Demo ML service',
        kind: 'ml',
        scopes: ['ml.inference', 'ml.training'],
        profile: 'groups',
        accessTokenFormat: 'jwt',
        signingAlg: 'ES256',
      },
      {
        audience: 'https://sync.demo',
        name: 'Demo sync&share',
        kind: 'sync',
        scopes: ['sync.read', 'sync.write'],
        profile: 'aarc',
        accessTokenFormat: 'jwt',
        signingAlg: 'ES256',
      },
    ],
    dataSources: [],
    users: [
      { username: 'alice', password: 'alice-password', name: 'Alice Researcher', email: 'alice@fedgate.demo', groups: ['/cms', '/cms/production'], disabled: false },
      { username: 'bob', password: 'bob-password', name: 'Bob Analyst', email: 'bob@fedgate.demo', groups: ['/atlas', '/ml-users'], disabled: false },
      { username: 'admin', password: 'admin-password', name: 'Demo Administrator', email: 'admin@fedgate.demo', groups: ['/admins'], disabled: false },
    ],
  };
}
