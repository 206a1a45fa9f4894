/**
 * The side-by-side benchmark's yardstick measured against itself: the same
 * server as baseline and subject (an A/A run), with the token-issuance
 * benchmark's round loop, load and options (BENCH_ROUNDS, BENCH_DURATION,
 * ...). A perfect yardstick would print 1.00 every time; the spread of what
 * it prints over several runs is what one run of `npm run bench` can
 * resolve, and a lean to one side is the order's bias (the subject is
 * always measured second in a round).
 *
 *   BENCH_ROUNDS=3 node bench/tools/side-by-side-aa.ts [fedgate|bare] [runs=3]
 */
import { clientCredentialsRequest } from '../lib/client-credentials.ts';
import { readOptions } from '../lib/options.ts';
import { fedgateSpec, runSideBySide, type ServerSpec } from '../lib/side-by-side.ts';
import { AUDIENCE, CLIENT_ID, CLIENT_SECRET, SCOPE } from '../servers/token-request.ts';

const which = process.argv[2] ?? 'fedgate';
const runs = Number(process.argv[3] ?? 3);
if (!['fedgate', 'bare'].includes(which) || !(runs >= 1)) {
  console.error('usage: side-by-side-aa.ts [fedgate|bare] [runs]');
  process.exit(2);
}
const options = readOptions();
const server: ServerSpec = which === 'bare'
  ? { kind: 'bare', name: 'bare oidc-provider', module: new URL('../servers/bare-provider.ts', import.meta.url), usesRedis: false }
  : fedgateSpec(options);
const client = { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, resource: AUDIENCE, scope: SCOPE };

for (let run = 1; run <= runs; run += 1) {
  const result = await runSideBySide(options, {
    id: `aa-${which}`,
    title: `A/A: ${which} against itself`,
    request: 'POST /token (client credentials)',
    specs: [{ ...server, kind: `${server.kind}-a`, name: `${server.name} A` }, { ...server, name: `${server.name} B` }],
    makeRequest: (child) => clientCredentialsRequest(child.url, client),
    // The token-issuance benchmark checks the answer; here both sides are the same server.
    verify: async () => {},
    targetRatio: 1,
    unit: 'token',
  });
  const ratio = result.checks.find((c) => c.name.startsWith('ratio'));
  console.log(`A/A run ${run}: best-of-${options.rounds} ratio B/A = ${ratio?.value.toFixed(3)} (${ratio?.note ?? ''})`);
}
process.exit(0);
