/**
 * The one error writer and middleware (src/util/errors.ts), on a real Koa
 * server on loopback: JSON or the error page by format and `Accept`, an
 * error's headers and fields, nothing unexposed on the wire, and anything
 * unknown answered as a generic 500 and reported exactly once.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Koa, { type Context } from 'koa';
import { FedgateError } from '../../src/util/errors.ts';
import { errorResponder, respondWithError, type ErrorFormat } from '../../src/http/error-response.ts';

const SECRET = 'redis://:hunter2@10.0.0.7:6379';

/** A refusal with a challenge, an extra JSON member and a page title. */
class Challenged extends FedgateError {
  constructor() {
    super('invalid_token', 'the access token expired', {
      status: 401, headers: { 'WWW-Authenticate': 'Bearer realm="test", error="invalid_token"' }, fields: { reason: 'expired' }, title: 'Sign in again',
    });
  }
}

/** What each path throws. */
const THROWS: Record<string, () => never> = {
  '/exposed': () => { throw new Challenged(); },
  '/unexposed': () => { throw new FedgateError('store_misconfigured', `cannot reach ${SECRET}`); },
  '/unexposed-4xx': () => { throw new FedgateError('invalid_request', `looked up ${SECRET}`, { status: 400, expose: false }); },
  '/unknown': () => { throw new TypeError(`Cannot read properties of undefined (reading '${SECRET}')`); },
  '/body-parser': () => { throw Object.assign(new Error('request entity too large'), { status: 413, expose: true }); },
  '/service-unavailable': () => { throw new FedgateError('temporarily_unavailable', 'try again shortly', { status: 503, expose: true, headers: { 'Retry-After': '7' } }); },
};

describe('the error writer and middleware', () => {
  let base: string;
  let server: ReturnType<Koa['listen']>;
  const reported: unknown[] = [];

  before(async () => {
    const app = new Koa();
    app.silent = true;
    app.on('error', (err) => reported.push(err));
    // The application's boundary, then a part of it with its own format (as src/app.ts and a router).
    app.use(async (ctx: Context, next) => {
      ctx.state.requestId = 'req-1';
      try {
        await next();
      } catch (err) {
        respondWithError(ctx, err, { format: 'json-or-page' });
      }
    });
    const part = (format: ErrorFormat, unreadable?: string) => errorResponder({ format, ...(unreadable ? { unreadable } : {}) });
    const parts: Record<string, Koa.Middleware> = {
      json: part('json'), page: part('page', 'The request could not be read.'), 'page-or-json': part('page-or-json'), 'json-or-page': part('json-or-page'),
    };
    app.use(async (ctx, next) => {
      const [, format = '', path = ''] = /^\/([a-z-]+)(\/.*)$/.exec(ctx.path) ?? [];
      const thrower = THROWS[path];
      const mw = parts[format];
      if (!thrower || !mw) return next();
      await mw(ctx, async () => thrower());
    });
    server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  const get = (path: string, accept?: string) => fetch(`${base}${path}`, accept ? { headers: { accept } } : {});

  it('answers an exposed error as JSON with its status, code, description, headers and fields', async () => {
    reported.length = 0;
    const res = await get('/json/exposed', 'text/html');
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="test", error="invalid_token"');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await res.json(), { error: 'invalid_token', error_description: 'the access token expired', reason: 'expired' });
    assert.equal(reported.length, 0, 'a refusal is no application error');
  });

  it('answers browsers with the error page: nonce CSP, no framing, no caching, the request id', async () => {
    const res = await get('/page/exposed', 'application/json');
    assert.equal(res.status, 401);
    assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
    const csp = res.headers.get('content-security-policy') ?? '';
    const nonce = /style-src 'nonce-([^']+)'/.exec(csp)?.[1];
    assert.ok(nonce, csp);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('www-authenticate'), 'Bearer realm="test", error="invalid_token"');
    const html = await res.text();
    assert.ok(html.includes(`nonce="${nonce}"`), 'the page\'s style carries the header\'s nonce');
    assert.match(html, /<h1>Sign in again<\/h1>/);
    assert.match(html, /<code>invalid_token<\/code>/);
    assert.match(html, /the access token expired/);
    assert.match(html, /<code>req-1<\/code>/);
  });

  it('negotiates by Accept, the format\'s first kind winning a tie', async () => {
    const kind = async (path: string, accept?: string) => ((await get(path, accept)).headers.get('content-type') ?? '').split(';')[0];
    assert.equal(await kind('/json-or-page/exposed', 'text/html,application/xhtml+xml,*/*;q=0.8'), 'text/html');
    assert.equal(await kind('/json-or-page/exposed', 'application/json'), 'application/json');
    assert.equal(await kind('/json-or-page/exposed', '*/*'), 'application/json');
    assert.equal(await kind('/json-or-page/exposed'), 'application/json');
    assert.equal(await kind('/page-or-json/exposed', '*/*'), 'text/html');
    assert.equal(await kind('/page-or-json/exposed', 'application/json'), 'application/json');
    assert.equal(await kind('/page-or-json/exposed', 'text/html'), 'text/html');
  });

  it('answers a library\'s client error as invalid_request, with its message or the part\'s fixed text', async () => {
    const json = await get('/json/body-parser');
    assert.equal(json.status, 413);
    assert.deepEqual(await json.json(), { error: 'invalid_request', error_description: 'request entity too large' });
    const page = await get('/page/body-parser');
    assert.equal(page.status, 413);
    const html = await page.text();
    assert.match(html, /The request could not be read\./);
    assert.doesNotMatch(html, /entity too large/);
  });

  it('keeps an exposed 5xx as it is (its status, code and headers)', async () => {
    reported.length = 0;
    const res = await get('/json/service-unavailable');
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '7');
    assert.deepEqual(await res.json(), { error: 'temporarily_unavailable', error_description: 'try again shortly' });
    assert.equal(reported.length, 0);
  });

  for (const path of ['/unexposed', '/unexposed-4xx', '/unknown']) {
    for (const format of ['json', 'page'] as const) {
      it(`answers ${path.slice(1)} (${format} part) as a generic 500 at the boundary, reported once, nothing of it on the wire`, async () => {
        reported.length = 0;
        const res = await get(`/${format}${path}`, format === 'page' ? 'text/html' : 'application/json');
        assert.equal(res.status, 500);
        assert.equal(res.headers.get('cache-control'), 'no-store');
        const text = await res.text();
        assert.ok(!text.includes('hunter2') && !text.includes('10.0.0.7'), text);
        assert.ok(!/at .*\.ts:\d+/.test(text) && !text.includes('TypeError'), 'no stack trace, no class name');
        if (format === 'page') {
          // The part's page format does not apply: the boundary answers, by Accept.
          assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
          assert.match(text, /<code>server_error<\/code>/);
        } else {
          assert.deepEqual(JSON.parse(text), { error: 'server_error', error_description: 'The server could not complete the request.' });
        }
        assert.equal(reported.length, 1, 'reported exactly once');
        assert.match(String((reported[0] as Error).message), /hunter2/, 'the report (the log) keeps the detail');
      });
    }
  }
});
