/**
 * Instructions per client credentials token, counted by valgrind's callgrind
 * in the server process (all its threads), for the `token-issuance` servers:
 * a figure no other load on the machine disturbs, where the side-by-side
 * benchmark's rates swing with it.
 *
 *   node bench/tools/callgrind-instructions.ts fedgate|bare [warm-up=3000] [measured=1000] [connections=4]
 *
 * The server runs under `valgrind --tool=callgrind` with instrumentation
 * off; after the warm-up requests (4 keep-alive connections unless told) counting is
 * switched on (`callgrind_control -i on`) for the measured ones only, then
 * dumped. Printed per token: all instructions, and split into the mutator
 * (JavaScript and the runtime), garbage collection, the optimizing compilers
 * and the signature's elliptic-curve arithmetic. GC and compiler figures
 * move with heap and warm-up state (a major GC more or less in the window);
 * compare mutator figures between builds, with the same warm-up.
 * Needs Redis (as the benchmark) and Debian's valgrind; takes minutes.
 */
import { execFileSync, fork } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deleteKeysWithPrefix } from '../lib/redis.ts';
import { AUDIENCE, CLIENT_ID, CLIENT_SECRET, SCOPE } from '../servers/token-request.ts';

const [kind = 'fedgate', warmArg = '3000', measuredArg = '1000', connectionsArg = '4'] = process.argv.slice(2);
if (kind !== 'fedgate' && kind !== 'bare') throw new TypeError('usage: callgrind-instructions.ts fedgate|bare [warm-up] [measured] [connections]');
const warm = Number(warmArg);
const measured = Number(measuredArg);
// The side-by-side benchmark loads with 32 connections; the count per token differs with concurrency (docs/performance.md).
const connections = Number(connectionsArg);
const prefix = `fedgate-bench:callgrind-${process.pid}:`;
const out = join(tmpdir(), `fedgate-callgrind-${process.pid}`);
const server = fileURLToPath(new URL(`../servers/${kind === 'bare' ? 'bare-provider' : 'fedgate'}.ts`, import.meta.url));

const child = fork(server, [], {
  execPath: 'valgrind',
  execArgv: ['--tool=callgrind', '--instr-atstart=no', '--smc-check=all-non-file', `--callgrind-out-file=${out}`, process.execPath],
  env: { ...process.env, BENCH_REDIS_PREFIX: prefix, BENCH_STORE_DEADLINE_MS: '60000' },
  stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
});
let stderr = '';
child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
const port = await new Promise<number>((resolve, reject) => {
  child.on('message', (m: { type?: string; port?: number }) => { if (m?.type === 'listening') resolve(m.port!); });
  child.once('exit', (code) => reject(new Error(`the server exited (${code}):\n${stderr.slice(-2000)}`)));
});

let agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const body = new URLSearchParams({ grant_type: 'client_credentials', resource: AUDIENCE, scope: SCOPE }).toString();
const headers = {
  authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
  'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', 'content-length': String(body.length),
};
const once = () => new Promise<void>((resolve, reject) => {
  const req = http.request({ host: '127.0.0.1', port, path: '/token', method: 'POST', agent, headers }, (res) => {
    let text = '';
    res.on('data', (chunk: Buffer) => { text += chunk.toString(); });
    res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}: ${text.slice(0, 300)}`))));
  });
  req.on('error', reject);
  req.end(body);
});
// A keep-alive connection the slowed-down server closes as it is reused: that request is sent again.
const request = () => once().catch((err: NodeJS.ErrnoException) => {
  if (err.code !== 'ECONNRESET') throw err;
  return once();
});
const run = async (count: number) => {
  let sent = 0;
  await Promise.all(Array.from({ length: connections }, async () => { while (sent++ < count) await request(); }));
};

const control = (...args: string[]) => execFileSync('callgrind_control', [...args, String(child.pid)], { stdio: 'ignore' });
try {
  await run(warm);
  // Fresh connections for the measured requests: the idle ones may have timed out while callgrind was told.
  agent.destroy();
  agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  control('-i', 'on');
  await run(measured);
  control('-d');
  control('-i', 'off');
} finally {
  child.send({ type: 'stop' });
  await new Promise((resolve) => child.once('exit', resolve));
  agent.destroy();
  await deleteKeysWithPrefix(process.env.REDIS_URL || 'redis://127.0.0.1:6379', prefix).catch(() => {});
}

// The dump written on request (not the one at exit): its functions with their instruction counts.
const dumps = readdirSync(tmpdir()).filter((f) => f.startsWith(`fedgate-callgrind-${process.pid}`)).map((f) => join(tmpdir(), f));
const dump = dumps.find((f) => /^desc: Trigger: .*dump/m.test(readFileSync(f, 'utf8')));
if (!dump) throw new Error('callgrind wrote no dump');
const annotated = execFileSync('callgrind_annotate', ['--threshold=100', dump], { maxBuffer: 256 * 1024 * 1024 }).toString();
for (const f of dumps) rmSync(f, { force: true });
const areas = { mutator: 0, gc: 0, compiler: 0, 'EC crypto': 0 };
const GC = /Marking|Mark|Sweep|Scaveng|Heap|IteratePointers|ObjectCache|ActiveSystemPages|Evacuat|Worklist|SizeFromMap|Collector|MemoryAllocator|RememberedSet|SlotSet|Page/;
const COMPILER = /compiler::|Turbofan|Maglev|Compil|Bytecode|Parse|Scanner|AstNode|Typer|Graph|turboshaft/;
const CRYPTO = /ecp_nistz|sha256|bn_|BN_|EC_|ecdsa|ossl|EVP/;
let total = 0;
for (const line of annotated.split('\n')) {
  const m = /^\s*([\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
  if (!m || m[2]!.includes('PROGRAM TOTALS')) continue;
  const n = Number(m[1]!.replaceAll(',', ''));
  total += n;
  const area = GC.test(m[2]!) ? 'gc' : COMPILER.test(m[2]!) ? 'compiler' : CRYPTO.test(m[2]!) ? 'EC crypto' : 'mutator';
  areas[area] += n;
}
const per = (n: number) => Math.round(n / measured).toLocaleString('en');
console.log(`${kind}: ${per(total)} instructions per token (warm-up ${warm}, measured ${measured}, ${connections} connections); `
  + Object.entries(areas).map(([area, n]) => `${area} ${per(n)}`).join(', '));
