/**
 * The README and docs/ against the code: the endpoints, commands, environment
 * variables and folders a newcomer reads about must be the ones that exist.
 * Each check reads the running code (a demo server, the CLI's own usage
 * text, the configuration loader's source), not a list kept beside it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { startServer, type TestServer } from '../support/harness.ts';

const ROOT = resolve('.');
const readme = await readFile('README.md', 'utf8');

/** The text of a README section, from its `## title` to the next `## `. */
function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a section "${title}"`);
  const end = readme.indexOf('\n## ', start + 4);
  return readme.slice(start, end < 0 ? undefined : end);
}

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...await sourceFiles(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

describe('README and docs match the code', () => {
  let server: TestServer;
  before(async () => { server = await startServer(); });
  after(() => server?.cleanup());

  it('the environment variables in the README are exactly those the configuration loader reads', async () => {
    const read = new Set<string>();
    for (const file of await sourceFiles('src/config')) {
      const text = await readFile(file, 'utf8');
      for (const m of text.matchAll(/\benv\.([A-Z][A-Z0-9_]*)\b|\benv\[['"]([A-Z][A-Z0-9_]*)['"]\]/g)) read.add(m[1] ?? m[2]!);
    }
    const documented = new Set([...section('Configuration').matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((m) => m[1]!));
    assert.deepEqual([...documented].sort(), [...read].sort());
    // And nothing outside the loader reads the environment (main.ts and the CLI hand it process.env).
    for (const file of await sourceFiles('src')) {
      if (file === join('src', 'main.ts') || file === join('src', 'cli', 'main.ts')) continue;
      assert.ok(!/process\.env(?:\.[A-Za-z_]|\[)/.test(await readFile(file, 'utf8')), `${file} reads process.env`);
    }
  });

  it('the endpoints the README lists are those discovery advertises, and each answers', async () => {
    const listed = [...readme.slice(readme.indexOf('The endpoints:'), readme.indexOf('The JWKS holds')).matchAll(/`(\/[^`]*)`/g)].map((m) => m[1]!);
    assert.ok(listed.length >= 10, 'the endpoint list was found');
    const discovery = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json() as Record<string, unknown>;
    const advertised = new Set(Object.entries(discovery)
      .filter(([key, value]) => (key.endsWith('_endpoint') || key === 'jwks_uri') && typeof value === 'string' && value.startsWith(server.issuer))
      .map(([, value]) => new URL(value as string).pathname));
    for (const path of advertised) assert.ok(listed.includes(path), `discovery advertises ${path}, the README does not list it`);
    for (const path of listed) {
      // Some endpoints take only POST (token, introspection, ...), others only GET.
      const statuses: number[] = [];
      for (const method of ['GET', 'POST']) {
        const res = await fetch(`${server.issuer}${path}`, { method, redirect: 'manual', ...(method === 'POST' ? { body: new URLSearchParams() } : {}) });
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      assert.ok(statuses.some((s) => s !== 404), `${path} is listed in the README but answers 404 to GET and POST`);
    }
    const opsPaths = [...section('Operations').matchAll(/^- `GET (\/[a-z]+)`/gm)].map((m) => m[1]!);
    assert.deepEqual(opsPaths.sort(), ['/healthz', '/metrics', '/readyz']);
    for (const path of opsPaths) assert.equal((await fetch(`${server.issuer}${path}`)).status, 200, path);
  });

  it('every admin API endpoint in the README is routed (401 without a token, never 404)', async () => {
    const rows = [...section('Admin API').matchAll(/^\| `((?:[A-Z]+`, `)*[A-Z]+) (\/admin\/api\/[^`\s[]*)[^`]*` \|/gm)];
    assert.ok(rows.length >= 15, 'the admin API table was found');
    const samples: Record<string, string> = { ':username': 'alice', ':group': 'cms', ':subject': 'user%3Abob', ':name': 'none' };
    for (const [, methods, path] of rows) {
      const concrete = path!.replace(/:[a-z]+/g, (p) => samples[p] ?? 'x');
      for (const method of methods!.split('`, `')) {
        const res = await fetch(`${server.issuer}${concrete}`, { method, headers: { 'content-type': 'application/json' }, ...(method === 'GET' || method === 'DELETE' ? {} : { body: '{}' }) });
        await res.arrayBuffer();
        assert.equal(res.status, 401, `${method} ${path} (as ${concrete}) answered ${res.status}`);
      }
    }
  });

  it('the command line section names every command the CLI has, and only those', async () => {
    const usage = await new Promise<string>((done, fail) => {
      execFile(process.execPath, ['src/cli/main.ts', '--help'], { env: { PATH: process.env.PATH! } }, (err, stdout) => (err ? fail(err) : done(stdout)));
    });
    const commands = new Set([...usage.matchAll(/^ {2}([a-z][a-z0-9-]*(?: [a-z][a-z0-9|-]*)?)/gm)].map((m) => m[1]!.split('|')[0]!));
    const table = section('Command line');
    const documented = [...table.matchAll(/^\| `([a-z][a-z0-9-]*(?: [a-z][a-z0-9|\\-]*)?)/gm)].map((m) => m[1]!.replace(/\\/g, '').split('|')[0]!);
    for (const command of commands) {
      assert.ok(documented.some((d) => d === command || (d.split(' ')[0] === command.split(' ')[0] && table.includes(command.split(' ')[1] ?? ''))), `the CLI has "${command}", the README's Command line table does not`);
    }
    for (const command of documented) {
      assert.ok([...commands].some((c) => c.split(' ')[0] === command.split(' ')[0]), `the README documents "${command}", the CLI has no such command`);
    }
    // npm scripts the README tells people to run exist.
    const scripts = (JSON.parse(await readFile('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts;
    for (const m of readme.matchAll(/\bnpm (?:run(?: -s)? ([a-z][a-z0-9:-]*)|(start|test)\b)/g)) {
      const name = m[1] ?? m[2]!;
      assert.ok(scripts[name], `the README runs npm script "${name}", package.json has none`);
    }
  });

  it('every folder of src/ is described in docs/architecture.md and the README\'s project layout', async () => {
    const architecture = await readFile('docs/architecture.md', 'utf8');
    const layout = section('Project layout');
    for (const entry of await readdir('src', { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      assert.match(architecture, new RegExp(`\`src/${entry.name}[\`/ ]`), `docs/architecture.md does not describe src/${entry.name}`);
      assert.match(layout, new RegExp(`^ {2}${entry.name}/|[ ,]${entry.name}/`, 'm'), `the README's project layout does not list ${entry.name}/`);
    }
  });

  it('no document links outside the repository or to a file that does not exist, and none announces built features as coming', async () => {
    const docs = ['README.md', ...(await readdir('docs')).filter((n) => n.endsWith('.md')).map((n) => join('docs', n)), 'policies/README.md', 'keys/README.md', 'docs/example-policies/README.md'];
    for (const doc of docs) {
      const text = await readFile(doc, 'utf8');
      for (const m of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/i.test(target)) continue;
        const path = resolve(dirname(doc), target);
        assert.ok(!relative(ROOT, path).startsWith('..'), `${doc} links outside the repository: ${target}`);
        await stat(path).catch(() => assert.fail(`${doc} links to ${target}, which does not exist`));
      }
      assert.doesNotMatch(text, /\.\.\/shared\//, `${doc} points outside the repository`);
      assert.doesNotMatch(text, /not built yet|not served yet|\(later feature\)/i, `${doc} announces as coming what exists`);
    }
    for (const file of ['Dockerfile', 'docker-compose.yml', 'docs/configuration.example.yaml']) {
      assert.doesNotMatch(await readFile(file, 'utf8'), /not built yet|not served yet|later feature/i, file);
    }
  });

  it('docker-compose takes the issuer from fedgate.yaml alone and mounts the policy seed where the example configuration reads it', async () => {
    const compose = parseYaml(await readFile('docker-compose.yml', 'utf8')) as { services: Record<string, { environment?: Record<string, string>; volumes?: unknown[] }> };
    const fedgate = compose.services.fedgate!;
    assert.equal(fedgate.environment?.ISSUER, undefined, 'ISSUER in the compose file would override the issuer of fedgate.yaml');
    const example = parseYaml(await readFile('docs/configuration.example.yaml', 'utf8')) as { issuer: string; policies: { dir: string } };
    assert.ok(example.issuer.startsWith('https://'));
    assert.ok(fedgate.volumes?.some((v) => typeof v === 'string' && v.endsWith(`:${example.policies.dir}:ro`)), 'the policy seed is mounted at policies.dir');
  });
});
