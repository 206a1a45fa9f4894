import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { within } from '../support/poll.ts';
import { bearer, send, startFixture, type Fixture } from './fixture.ts';


describe('/api/<service>: the reverse proxy', () => {
  let f: Fixture;
  let small: Fixture;

  before(async () => {
    f = await startFixture();
    small = await startFixture({ configure: (config) => { config.gateway.maxBodyBytes = 1000; } });
  });
  after(async () => {
    await f.close();
    await small.close();
  });
  beforeEach(() => {
    for (const fixture of [f, small]) {
      fixture.pdp.rules = [
        { subject: '/cms', domain: 'data', path: '/store/cms', action: '*' },
        { subject: '/cms', domain: 'orchestrator', path: '*', action: '*' },
        { subject: '/cms', domain: 'slow', path: '*', action: '*' },
        { subject: '/cms', domain: 'stalling', path: '*', action: '*' },
        { subject: '/cms', domain: 'gone', path: '*', action: '*' },
        { subject: '/cms', domain: 'decide-only', path: '*', action: '*' },
      ];
    }
  });

  const calls = () => f.upstream.received.length;

  it('forwards method, path under the upstream base, query and body, and copies the answer', async () => {
    const token = await f.sign();
    const res = await send(f.url, '/api/data/store/cms/created?a=1&b=%20x', {
      method: 'POST', headers: { ...bearer(token), 'content-type': 'text/plain', cookie: 'session=1' }, body: 'hello upstream',
    });
    assert.equal(res.status, 201, res.text);
    assert.equal(res.headers['x-upstream'], 'yes');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.deepEqual(res.json(), { ok: true, method: 'POST', url: '/base/store/cms/created?a=1&b=%20x', bytes: 14 });
    const got = f.upstream.received.at(-1)!;
    assert.equal(got.headers.host, new URL(f.upstream.url).host, 'Host is the upstream\'s');
    assert.equal(got.headers['x-forwarded-host'], new URL(f.url).host);
    assert.equal(got.headers['x-forwarded-proto'], 'http');
    assert.equal(got.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(got.headers.cookie, 'session=1');
    assert.equal(got.headers.authorization, `Bearer ${token}`, 'forwardToken: the token goes along');
    assert.equal(got.headers['x-fedgate-user'], 'alice');
    assert.equal(got.headers['x-fedgate-subject'], f.users.alice.id);
    assert.equal(got.headers['x-fedgate-groups'], '/cms,/cms/production');
    assert.equal(got.headers['x-fedgate-client'], 'demo-cli');
    assert.equal(got.headers['x-fedgate-scope'], 'storage.read:/');
    assert.equal(got.headers['x-fedgate-audience'], 'https://storage.demo');
    assert.match(String(got.headers['x-fedgate-token-expires']), /^\d{10}$/);
  });

  it('maps /api/<service> and /api/<service>/ onto the upstream base path', async () => {
    const token = await f.sign({ sub: f.users.admin.id });
    f.pdp.rules.push({ subject: '/admins', domain: 'data', path: '*', action: '*' });
    assert.equal((await send(f.url, '/api/data', { headers: bearer(token) })).json().url, '/base');
    assert.equal((await send(f.url, '/api/data/', { headers: bearer(token) })).json().url, '/base/');
    assert.equal((await send(f.url, '/api/data?x=1', { headers: bearer(token) })).json().url, '/base?x=1');
    const client = await f.sign({ sub: 'demo-service', client_id: 'demo-service', aud: 'https://orchestrator.demo' });
    f.pdp.rules.push({ subject: 'client:demo-service', domain: 'orchestrator', path: '/', action: 'GET' });
    assert.equal((await send(f.url, '/api/orchestrator', { headers: bearer(client) })).json().url, '/');
  });

  it('never lets a client-sent identity header reach the upstream', async () => {
    const token = await f.sign({ sub: f.users.bob.id, client_id: 'demo-portal' });
    f.pdp.rules.push({ subject: '/atlas', domain: 'data', path: '/store/atlas', action: 'GET' });
    const res = await send(f.url, '/api/data/store/atlas/x', {
      headers: {
        ...bearer(token),
        'X-Fedgate-User': 'root', 'x-fedgate-groups': '/admins', 'X-FEDGATE-SUBJECT': 'root', 'X-Fedgate-Anything': 'x',
        'X-Forwarded-User': 'root', 'X-Forwarded-Email': 'root@x', 'X-Forwarded-Groups': '/admins', 'X-Auth-Request-User': 'root',
        'X-Remote-User': 'root', 'Remote-User': 'root', 'Client-Cert': ':AAAA:', 'Client-Cert-Chain': ':AAAA:', 'SSL-Client-Cert': 'x',
        'X-Forwarded-Client-Cert': 'x', 'X-Forwarded-For': '6.6.6.6', 'X-Forwarded-Host': 'evil.example', Forwarded: 'for=6.6.6.6',
      },
    });
    assert.equal(res.status, 200, res.text);
    const got = f.upstream.received.at(-1)!;
    const names = got.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
    assert.deepEqual(names.filter((n) => n.startsWith('x-fedgate-')).sort(), [
      'x-fedgate-audience', 'x-fedgate-client', 'x-fedgate-groups', 'x-fedgate-scope', 'x-fedgate-subject', 'x-fedgate-token-expires', 'x-fedgate-user',
    ], 'each identity header once, and only fedgate\'s');
    assert.equal(got.headers['x-fedgate-user'], 'bob');
    assert.equal(got.headers['x-fedgate-groups'], '/atlas');
    assert.equal(got.headers['x-fedgate-client'], 'demo-portal');
    for (const name of ['x-forwarded-user', 'x-forwarded-email', 'x-forwarded-groups', 'x-auth-request-user', 'x-remote-user', 'remote-user',
      'client-cert', 'client-cert-chain', 'ssl-client-cert', 'x-forwarded-client-cert', 'forwarded']) {
      assert.equal(got.headers[name], undefined, name);
    }
    assert.equal(got.headers['x-forwarded-for'], '127.0.0.1', 'without trustProxy a client\'s X-Forwarded-For is replaced');
    assert.notEqual(got.headers['x-forwarded-host'], 'evil.example');
  });

  it('strips identity headers in every spelling a WSGI or CGI upstream would read as one, and method overrides', async () => {
    const token = await f.sign({ sub: f.users.bob.id });
    f.pdp.rules.push({ subject: '/atlas', domain: 'data', path: '/store/atlas', action: 'GET' });
    const spoofed = {
      X_Fedgate_User: 'root', 'X-Fedgate_User': 'root', 'x_fedgate-groups': '/admins', X_FEDGATE_SUBJECT: 'root', X_Forwarded_User: 'root',
      'X-Forwarded_Groups': '/admins', X_Remote_User: 'root', Remote_User: 'root', X_Auth_Request_Email: 'root@x', Client_Cert: ':AAAA:',
      X_SSL_Client_Cert: 'x', 'X-HTTP-Method-Override': 'DELETE', 'X-Method-Override': 'DELETE', X_HTTP_Method_Override: 'PUT', 'X-HTTP-Method': 'DELETE',
      X_Forwarded_For: '6.6.6.6', X_Forwarded_Host: 'evil.example', X_Forwarded_Proto: 'gopher',
    };
    const res = await send(f.url, '/api/data/store/atlas/x', { headers: { ...bearer(token), ...spoofed } });
    assert.equal(res.status, 200, res.text);
    const got = f.upstream.received.at(-1)!;
    // What a WSGI server makes of each name: HTTP_ + upper case, `-` as `_`.
    const cgi = got.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => `HTTP_${n.toUpperCase().replaceAll('-', '_')}`);
    for (const name of Object.keys(spoofed)) {
      const seen = cgi.filter((c) => c === `HTTP_${name.toUpperCase().replaceAll('-', '_')}`).length;
      const fedgateSets = /^x[-_]fedgate[-_]/i.test(name) || /^x[-_]forwarded[-_](for|host|proto)$/i.test(name) ? 1 : 0;
      assert.equal(seen, fedgateSets, `${name}: only fedgate's own value may reach the upstream`);
    }
    assert.equal(got.headers['x-fedgate-user'], 'bob');
    assert.equal(got.headers['x-forwarded-for'], '127.0.0.1');
  });

  it('leaves the token behind for services without forwardToken', async () => {
    const res = await send(f.url, '/api/orchestrator/jobs', { headers: { ...bearer(await f.sign({ aud: 'https://orchestrator.demo' })), dpop: 'x' } });
    assert.equal(res.status, 200, res.text);
    const got = f.upstream.received.at(-1)!;
    assert.equal(got.headers.authorization, undefined);
    assert.equal(got.headers.dpop, undefined);
    assert.equal(got.headers['x-fedgate-user'], 'alice');
  });

  it('drops hop-by-hop headers both ways, including those the Connection header names', async () => {
    const res = await send(f.url, '/api/data/store/cms/hop', {
      headers: { ...bearer(await f.sign()), connection: 'keep-alive, X-Private', 'x-private': 'secret', 'keep-alive': 'timeout=5', 'proxy-authorization': 'Basic x', te: 'trailers', 'x-normal': '1' },
    });
    assert.equal(res.status, 200);
    const got = f.upstream.received.at(-1)!;
    for (const name of ['x-private', 'keep-alive', 'proxy-authorization', 'te']) assert.equal(got.headers[name], undefined, name);
    assert.equal(got.headers['x-normal'], '1');
    assert.equal(res.headers['x-private-hop'], undefined, 'a response header the upstream\'s Connection names');
    assert.equal(res.headers['x-upstream'], 'yes');
  });

  describe('requests refused before the upstream', () => {
    it('refuses traversal and encoded separators with 400, without calling the upstream', async () => {
      const token = await f.sign({ sub: f.users.admin.id });
      f.pdp.rules.push({ subject: '/admins', domain: 'data', path: '*', action: '*' });
      const before = calls();
      for (const path of [
        '/api/data/store/cms/../atlas', '/api/data/store/cms/%2e%2e/atlas', '/api/data/store/cms/%2E%2e/atlas', '/api/data/store/cms/./x',
        '/api/data/store/cms%2fatlas', '/api/data/store/cms%2F..%2Fatlas', '/api/data/store//atlas', '/api/data/store/cms%5c..%5catlas',
        '/api/data/store/cms\\..\\atlas', '/api/data/store/%00', '/api/data/store/%zz', '/api/data/store/%c3%28', '/api/../admin/api',
        '/api/data/store/cms/..',
      ]) {
        const res = await send(f.url, path, { headers: bearer(token) });
        assert.equal(res.status, 400, path);
        assert.equal(res.json().error, 'invalid_request', path);
      }
      assert.equal(calls(), before, 'the upstream was never called');
    });

    it('answers 404 for unknown services and services without an upstream', async () => {
      const token = await f.sign();
      for (const path of ['/api/nope/x', '/api/decide-only/x', '/api/', '/api/DATA/store/cms/x']) {
        const res = await send(f.url, path, { headers: bearer(token) });
        assert.equal(res.status, 404, path);
        assert.deepEqual(res.json().error, 'not_found');
      }
    });

    it('answers 401 without a token and 403 when the policy says no, without calling the upstream', async () => {
      const before = calls();
      const anonymous = await send(f.url, '/api/data/store/cms/x');
      assert.equal(anonymous.status, 401);
      // RFC 9728 §5.1: the challenge names the protected resource's metadata.
      assert.equal(anonymous.headers['www-authenticate'], 'Bearer realm="fedgate", resource_metadata="https://id.fedgate.test/.well-known/oauth-protected-resource/api/data"');
      const denied = await send(f.url, '/api/data/store/atlas/x', { headers: bearer(await f.sign()) });
      assert.equal(denied.status, 403);
      assert.equal(denied.json().error_description, 'the policy does not allow GET /store/atlas/x');
      const wrongAudience = await send(f.url, '/api/data/store/cms/x', { headers: bearer(await f.sign({ aud: 'https://ml.demo' })) });
      assert.equal(wrongAudience.status, 401);
      assert.equal(calls(), before);
    });

    it('leaves oversized headers to Node (431) and answers oversized targets with 414', async () => {
      const token = await f.sign();
      const before = calls();
      const big = await send(f.url, '/api/data/store/cms/x', { headers: { ...bearer(token), 'x-big': 'a'.repeat(20_000) } });
      assert.equal(big.status, 431);
      const long = await send(f.url, `/api/data/store/cms/${'a'.repeat(9000)}`, { headers: bearer(token) });
      assert.equal(long.status, 414);
      assert.equal(long.json().error, 'uri_too_long');
      assert.equal(calls(), before);
    });

    it('answers 413 for a Content-Length over maxBodyBytes, and cuts off longer chunked bodies', async () => {
      const token = await small.sign();
      const before = small.upstream.received.length;
      const declared = await send(small.url, '/api/data/store/cms/x', { method: 'PUT', headers: { ...bearer(token), 'content-length': '1001' }, body: 'x'.repeat(1001) });
      assert.equal(declared.status, 413);
      assert.equal(declared.json().error, 'payload_too_large');
      assert.equal(small.upstream.received.length, before);
      const fits = await send(small.url, '/api/data/store/cms/x', { method: 'PUT', headers: bearer(token), body: 'x'.repeat(1000) });
      assert.equal(fits.status, 200);

      const chunked = await new Promise<number>((resolve, reject) => {
        const url = new URL(small.url);
        const req = httpRequest({ host: url.hostname, port: url.port, path: '/api/data/store/cms/x', method: 'PUT', headers: bearer(token), agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', reject);
        for (let i = 0; i < 5; i += 1) req.write('y'.repeat(400));
        req.end();
      });
      assert.equal(chunked, 413);
    });
  });

  describe('streaming', () => {
    it('streams a 20 MB body through in both directions without buffering it', async () => {
      const token = await f.sign();
      const url = new URL(f.url);
      const chunk = Buffer.alloc(1024 * 1024);
      const total = 20;
      const sent = createHash('sha256');
      const echoedHash = createHash('sha256');
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest({
          host: url.hostname, port: url.port, path: '/api/data/store/cms/echo', method: 'PUT', agent: false,
          headers: { ...bearer(token), 'content-length': String(total * chunk.length), 'content-type': 'application/octet-stream' },
        });
        let written = 0;
        let echoed = 0;
        const timer = setTimeout(() => reject(new Error(`stalled after writing ${written} MiB with ${echoed} bytes echoed`)), 15_000);
        // The next MiB goes out only when the previous one came back: impossible if fedgate held either body back.
        const writeNext = () => {
          if (written === total) return req.end();
          chunk.fill(written);
          sent.update(chunk);
          written += 1;
          req.write(Buffer.from(chunk));
        };
        req.on('response', (res: IncomingMessage) => {
          if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
          res.on('data', (data: Buffer) => {
            echoed += data.length;
            echoedHash.update(data);
            if (echoed === written * chunk.length) writeNext();
          });
          res.on('end', () => {
            clearTimeout(timer);
            if (echoed === total * chunk.length) resolve();
            else reject(new Error(`echoed ${echoed} bytes`));
          });
        });
        req.on('error', reject);
        writeNext();
      });
      assert.equal(echoedHash.digest('hex'), sent.digest('hex'), 'the bytes came back unchanged');
      assert.equal(f.upstream.received.at(-1)!.bodyBytes, total * chunk.length);
    });
  });

  describe('upstream failures', () => {
    it('answers 502 when the upstream refuses the connection', async () => {
      const res = await send(f.url, '/api/gone/x', { headers: bearer(await f.sign()) });
      assert.equal(res.status, 502);
      assert.deepEqual(res.json().error, 'bad_gateway');
    });

    it('answers 504 when the upstream sends no headers within the timeout', async () => {
      const started = Date.now();
      const res = await send(f.url, '/api/slow/x', { headers: bearer(await f.sign()) });
      assert.equal(res.status, 504);
      assert.deepEqual(res.json().error, 'gateway_timeout');
      assert.ok(Date.now() - started < 3000);
    });

    it('cuts the response off (no hang) when the upstream stalls mid-body', async () => {
      const url = new URL(f.url);
      const token = await f.sign();
      const outcome = await new Promise<{ status: number; body: string; complete: boolean }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('the client hangs')), 5000);
        const req = httpRequest({ host: url.hostname, port: url.port, path: '/api/stalling/x', headers: bearer(token), agent: false }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => { body += d.toString(); });
          res.on('close', () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode!, body, complete: res.complete });
          });
        });
        req.on('error', () => {});
        req.end();
      });
      assert.equal(outcome.status, 200);
      assert.equal(outcome.body, 'partial');
      assert.equal(outcome.complete, false, 'the truncated body is not passed off as complete');
    });

    it('aborts the upstream request when the client goes away', async () => {
      const url = new URL(f.url);
      const token = await f.sign();
      const before = calls();
      const req = httpRequest({ host: url.hostname, port: url.port, path: '/api/data/store/cms/hang', headers: bearer(token), agent: false });
      req.on('error', () => {});
      req.end();
      await within(3000, () => calls() > before, 'the upstream to be called');
      const record = f.upstream.received.at(-1)!;
      assert.equal(record.closedEarly, false);
      req.destroy();
      await within(2000, () => record.closedEarly, 'the upstream request to be aborted');
    });

    it('aborts the upstream response when the client leaves mid-body', async () => {
      const url = new URL(f.url);
      const token = await f.sign();
      const before = calls();
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest({ host: url.hostname, port: url.port, path: '/api/data/store/cms/stall', headers: bearer(token), agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => {});
        req.on('close', () => resolve());
        req.end();
        setTimeout(() => reject(new Error('no body arrived')), 3000);
      });
      assert.equal(calls(), before + 1);
      const record = f.upstream.received.at(-1)!;
      await within(2000, () => record.closedEarly, 'the upstream response to be aborted');
    });
  });

  it('lets no error escape to the app boundary', () => {
    assert.deepEqual(f.escaped, []);
    // Koa passes body stream errors (upstream body timeout, client gone) to the app's error event; the
    // gateway marks them handled, so fedgate does not log them as unhandled application errors.
    assert.deepEqual(f.emitted.filter((e) => !(e as { expose?: boolean }).expose), []);
    assert.deepEqual(small.escaped, []);
  });
});
