import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Browser, decodeJwt, loginThroughPages, startServer, type TestServer } from '../support/harness.ts';

const SCRIPT = join(import.meta.dirname, '..', 'fixtures', 'clients', 'authlib_rp.py');

/** Authlib (Debian's python3-authlib), the Python OAuth library, as a web application of fedgate. */
describe('Python Authlib against fedgate', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });
  after(() => server.cleanup());

  it('signs alice in with code + PKCE and client_secret_basic, verifies the ID token, and refreshes a narrower token', async () => {
    const redirectUri = 'http://localhost:3000/callback';
    // Debian's interpreter, where python3-authlib is installed.
    const child = spawn('/usr/bin/python3', [SCRIPT, server.issuer, 'demo-portal', 'demo-portal-secret', redirectUri], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const lines: string[] = [];
    const waiters: Array<() => void> = [];
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      const parts = stdout.split('\n');
      stdout = parts.pop()!;
      lines.push(...parts.filter(Boolean));
      for (const w of waiters.splice(0)) w();
    });
    const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
    const nextLine = async (): Promise<Record<string, unknown>> => {
      const deadline = Date.now() + 20_000;
      while (!lines.length) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`authlib_rp.py: ${stderr}`);
        await new Promise<void>((resolve) => { waiters.push(resolve); setTimeout(resolve, 200); });
      }
      return JSON.parse(lines.shift()!) as Record<string, unknown>;
    };
    try {
      const { authorization_url: url } = await nextLine() as { authorization_url: string };
      const authorization = new URL(url);
      assert.equal(authorization.searchParams.get('code_challenge_method'), 'S256');
      const callback = await loginThroughPages(new Browser(), authorization, redirectUri, { username: 'alice', password: 'alice-password' });
      child.stdin.end(`${callback.href}\n`);
      const result = await nextLine() as { claims: Record<string, unknown>; access_token: string; refreshed_access_token: string; rotated: boolean };
      assert.equal(result.claims.preferred_username, 'alice');
      assert.equal(result.claims.iss, server.issuer);
      const access = decodeJwt(result.access_token).payload;
      assert.equal(access.aud, 'https://orchestrator.demo');
      assert.equal(access.scope, 'compute.read');
      const refreshed = decodeJwt(result.refreshed_access_token).payload;
      assert.equal(refreshed.aud, 'https://orchestrator.demo');
      assert.equal(result.rotated, true);
      assert.equal(await exited, 0, stderr);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
    }
  });
});
