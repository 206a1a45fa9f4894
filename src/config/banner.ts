import type { Config } from './schema.ts';

/** The start-up description of the demo realm: what a newcomer can use right away. */
export function demoBanner(config: Config): string {
  const lines = [
    '',
    '================ fedgate DEMO REALM (not for production) ================',
    `issuer       ${config.issuer}`,
    `discovery    ${config.issuer}/.well-known/openid-configuration`,
    '',
    'clients:',
    ...config.clients.map((c) => `  ${c.clientId.padEnd(14)} ${c.clientSecret ? `secret ${c.clientSecret}` : 'public (PKCE)'}  grants: ${c.grantTypes.join(', ')}`),
    '',
    'resource servers (audiences):',
    ...config.resourceServers.map((rs) => `  ${rs.audience.padEnd(28)} ${rs.profile.padEnd(6)} scopes: ${rs.scopes.join(' ')}`),
    '',
    'users:',
    ...config.users.map((u) => {
      const manages = config.groups.filter((g) => g.managers?.includes(u.username)).map((g) => g.path);
      return `  ${u.username.padEnd(8)} password ${(u.password ?? '').padEnd(16)} groups: ${u.groups.join(', ')}${manages.length ? `  manages: ${manages.join(', ')}` : ''}`;
    }),
    '=========================================================================',
    '',
  ];
  return `${lines.join('\n')}\n`;
}
