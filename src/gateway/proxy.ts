/**
 * The reverse proxy: `/api/<service>/<rest>` is authenticated, decided and
 * forwarded to the service's upstream as `<upstream base path>/<rest>`.
 *
 * Bodies stream both ways (the request body is the client's socket, the
 * response body undici's stream); nothing is buffered, so uploads and
 * downloads of any size cost a few socket buffers of memory. Every failure of
 * the upstream is a 502 or 504, never a 500 and never a hang: headers and
 * body chunks each have the service's timeout, and a client that goes away
 * aborts the upstream request.
 */
import type { IncomingMessage } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import type Koa from 'koa';
import type { Context } from 'koa';
import { Pool } from 'undici';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../store/store.ts';
import { gatewayResource, protectedResourceMetadataUrl } from './protected-resource.ts';
import { authenticate, type Authenticated } from './authenticate.ts';
import { normaliseAddress } from '../http/client-address.ts';
import type { ClientCertificateReader } from '../http/client-certificate.ts';
import { authorize, type DecisionDeps } from './decision.ts';
import { BadGateway, GatewayError, GatewayTimeout, NotFound, PayloadTooLarge, sendError } from './errors.ts';
import { identityHeaders, isStrippedHeader } from './identity-headers.ts';
import { parseRequestTarget } from './request-target.ts';
import type { GatewayService, ServiceRegistry } from './service-registry.ts';
import type { TokenVerifier } from './token-verifier.ts';
import { setRouteLabel } from '../http/route-label.ts';

/** The path prefix the app routes to the proxy. */
export const PROXY_PREFIX = '/api/';

/** RFC 9110 §7.6.1 hop-by-hop fields, plus the pre-standard ones proxies still see. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings']);
/** undici errors that mean the upstream was too slow rather than unreachable. */
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'ETIMEDOUT']);
/** Longest wait for a TCP connection to an upstream, whatever the service timeout. */
const MAX_CONNECT_TIMEOUT_MS = 10_000;

export interface ProxyDeps {
  config: Pick<Config, 'trustProxy' | 'gateway' | 'issuer'>;
  services: ServiceRegistry;
  verifier: TokenVerifier;
  store: Store;
  decision: DecisionDeps;
  certificates: ClientCertificateReader;
  logger: Logger;
}

export interface ReverseProxy {
  middleware: Koa.Middleware;
  /** Closes the upstream connection pools (in-flight requests get a moment to finish). */
  close(): Promise<void>;
}

interface Upstream {
  origin: string;
  /** The upstream URL's path without trailing slash (`/base`, or empty). */
  basePath: string;
  timeoutMs: number;
}

/** Names listed in a Connection header: also hop-by-hop (RFC 9110 §7.6.1). */
function connectionOptions(value: string | string[] | undefined): Set<string> | undefined {
  if (!value) return undefined;
  const names = (Array.isArray(value) ? value.join(',') : value).split(',').map((v) => v.trim().toLowerCase()).filter(Boolean);
  return names.length ? new Set(names) : undefined;
}

function isHopByHop(name: string, named: Set<string> | undefined): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith('proxy-') || (named?.has(name) ?? false);
}

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null;
  const code = e?.code ?? e?.cause?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * A pass-through that stops at `max` bytes, for bodies without a
 * Content-Length. The rest of the client's upload is read and dropped so
 * the 413 can still be delivered.
 */
function limitBody(req: IncomingMessage, max: number, onExceeded: () => void): Readable {
  let seen = 0;
  const limiter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.length;
      if (seen <= max) return done(null, chunk);
      onExceeded();
      req.unpipe(limiter);
      req.resume();
      done(new PayloadTooLarge('the request body is too large'));
    },
  });
  req.once('error', (err) => limiter.destroy(err));
  req.pipe(limiter);
  return limiter;
}

/** Creates the `/api/<service>/*` reverse proxy. */
export function createProxy(deps: ProxyDeps): ReverseProxy {
  const { services, verifier, store, certificates, logger, config } = deps;
  const maxBodyBytes = config.gateway.maxBodyBytes;
  // Services come and go at run time (data sources): each one's upstream is derived once per service entry.
  const upstreams = new WeakMap<GatewayService, Upstream | null>();
  const pools = new Map<string, Pool>();
  let closed = false;

  const upstreamOf = (service: GatewayService): Upstream | undefined => {
    let upstream = upstreams.get(service);
    if (upstream === undefined) {
      const url = service.config.upstream ? new URL(service.config.upstream) : undefined;
      upstream = url ? { origin: url.origin, basePath: url.pathname.replace(/\/+$/, ''), timeoutMs: service.config.timeoutSeconds * 1000 } : null;
      upstreams.set(service, upstream);
    }
    return upstream ?? undefined;
  };

  const poolFor = (upstream: Upstream): Pool => {
    let pool = pools.get(upstream.origin);
    if (!pool) {
      // One pool per origin, shared by the services behind it; it connects no slower than the quickest of them waits.
      const timeouts = services.all().map(upstreamOf).filter((u) => u?.origin === upstream.origin).map((u) => u!.timeoutMs);
      pool = new Pool(upstream.origin, { connect: { timeout: Math.min(MAX_CONNECT_TIMEOUT_MS, upstream.timeoutMs, ...timeouts) } });
      pools.set(upstream.origin, pool);
    }
    return pool;
  };

  /** Closes the pools of origins no service proxies to any more (a data source removed or moved). */
  const prunePools = () => {
    const used = new Set(services.all().map((s) => upstreamOf(s)?.origin));
    for (const [origin, pool] of pools) {
      if (used.has(origin)) continue;
      pools.delete(origin);
      // Requests in flight finish first (close waits for them).
      void pool.close().catch(() => {});
    }
  };
  const stopWatching = services.onChange(prunePools);

  /** The client's headers minus hop-by-hop, identity and (unless forwarded) credential headers, plus fedgate's. */
  const forwardHeaders = (ctx: Context, service: GatewayService, identityPairs: ReadonlyArray<readonly [string, string]>): string[] => {
    const req = ctx.req;
    const named = connectionOptions(req.headers.connection);
    const forwardToken = service.config.forwardToken;
    const out: string[] = [];
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const lower = name.toLowerCase();
      if (isHopByHop(lower, named) || isStrippedHeader(lower)) continue;
      // Host is the upstream's (undici sets it); Expect was answered by Node already.
      if (lower === 'host' || lower === 'expect') continue;
      // fedgate sets these itself; `_` spellings too, which CGI-style upstreams read as the same header.
      const normalised = lower.includes('_') ? lower.replaceAll('_', '-') : lower;
      if (normalised === 'x-forwarded-for' || normalised === 'x-forwarded-proto' || normalised === 'x-forwarded-host') continue;
      if (normalised === 'forwarded' && (!config.trustProxy || normalised !== lower)) continue;
      if (!forwardToken && (lower === 'authorization' || lower === 'dpop')) continue;
      out.push(name, raw[i + 1]!);
    }
    for (const [name, value] of identityPairs) out.push(name, value);
    const peer = normaliseAddress(req.socket.remoteAddress ?? '');
    const prior = config.trustProxy ? req.headers['x-forwarded-for'] : undefined;
    out.push('X-Forwarded-For', prior ? `${prior}, ${peer}` : peer);
    out.push('X-Forwarded-Proto', ctx.protocol);
    if (ctx.host) out.push('X-Forwarded-Host', ctx.host);
    return out;
  };

  const handle = async (ctx: Context): Promise<void> => {
    const target = parseRequestTarget(ctx.req.url ?? '');
    const match = /^\/api\/([^/]+)(\/.*)?$/.exec(target.rawPath);
    // The target is valid, so the service segment decodes cleanly.
    const service = match ? services.byName(decodeURIComponent(match[1]!)) : undefined;
    const upstream = service ? upstreamOf(service) : undefined;
    if (!service || !upstream) throw new NotFound('no such service');
    setRouteLabel(ctx, `/api/${service.name}`);
    const rest = match![2] ?? '';
    const object = target.path.slice(`/api/${service.name}`.length) || '/';

    const length = ctx.req.headers['content-length'];
    if (maxBodyBytes > 0 && length !== undefined && Number(length) > maxBodyBytes) throw new PayloadTooLarge('the request body is too large');

    const method = ctx.method;
    let auth: Authenticated;
    try {
      auth = await authenticate(verifier, store, {
        authorization: ctx.req.headers.authorization,
        method,
        url: () => `${ctx.protocol}://${ctx.host}${target.rawPath}`,
        dpopProofs: () => ctx.req.headersDistinct.dpop ?? [],
        clientCertificate: () => certificates(ctx.req),
      }, service.audience);
      authorize(ctx, deps.decision, auth, service, method, object);
    } catch (err) {
      // RFC 9728 §5.1: the challenge tells the client where to discover the authorization server and scopes.
      if (err instanceof GatewayError) err.resourceMetadata = protectedResourceMetadataUrl(gatewayResource(config.issuer, service.name));
      throw err;
    }

    const hasBody = (length !== undefined && length !== '0') || ctx.req.headers['transfer-encoding'] !== undefined;
    let tooLarge = false;
    const body = !hasBody ? undefined
      : maxBodyBytes > 0 && length === undefined ? limitBody(ctx.req, maxBodyBytes, () => { tooLarge = true; })
      : ctx.req;

    const abort = new AbortController();
    // The response closing before it finished means the client went away: stop the upstream request too.
    ctx.res.once('close', () => {
      if (!ctx.res.writableFinished) abort.abort();
    });

    let response: Awaited<ReturnType<Pool['request']>>;
    try {
      if (closed) throw new BadGateway('the gateway is shutting down');
      response = await poolFor(upstream).request({
        path: (`${upstream.basePath}${rest}` || '/') + (target.query ? `?${target.query}` : ''),
        method,
        headers: forwardHeaders(ctx, service, identityHeaders(auth.identity)),
        body: body ?? null,
        signal: abort.signal,
        headersTimeout: upstream.timeoutMs,
        bodyTimeout: upstream.timeoutMs,
      });
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      if (tooLarge) throw new PayloadTooLarge('the request body is too large');
      if (abort.signal.aborted) {
        // Nginx's "client closed request": nobody is left to read an answer.
        ctx.status = 499;
        return;
      }
      const code = errorCode(err);
      logger.warn({ service: service.name, code, requestId: ctx.state.requestId }, 'upstream request failed');
      if (code && TIMEOUT_CODES.has(code)) throw new GatewayTimeout('the upstream service did not answer in time');
      throw new BadGateway('the upstream service could not be reached');
    }

    ctx.status = response.statusCode;
    const named = connectionOptions(response.headers.connection);
    for (const [name, value] of Object.entries(response.headers)) {
      if (value === undefined || isHopByHop(name, named)) continue;
      ctx.set(name, value);
    }
    const typed = response.headers['content-type'] !== undefined;
    response.body.on('error', (err) => {
      // Koa hands a body stream's error to the app's error log as unhandled. Here it is handled: a
      // client that left needs no log line, an upstream failing mid-body gets one warning. `expose`
      // is what the app's error listener skips (src/app.ts).
      if (err && typeof err === 'object') (err as { expose?: boolean }).expose = true;
      if (!abort.signal.aborted) logger.warn({ service: service.name, code: errorCode(err), requestId: ctx.state.requestId }, 'upstream response body failed');
    });
    ctx.body = response.body;
    // Koa labels untyped streams application/octet-stream; the upstream's answer goes out as it was.
    if (!typed) ctx.remove('Content-Type');
  };

  return {
    middleware: async (ctx) => {
      setRouteLabel(ctx, '/api/:service');
      try {
        await handle(ctx);
      } catch (err) {
        if (err instanceof GatewayError) return sendError(ctx, err);
        throw err;
      }
    },
    async close() {
      closed = true;
      stopWatching();
      await Promise.all([...pools.values()].map(async (pool) => {
        const timer = setTimeout(() => void pool.destroy().catch(() => {}), 1000);
        try {
          await pool.close();
        } catch {
          // Destroyed meanwhile: nothing left to wait for.
        } finally {
          clearTimeout(timer);
        }
      }));
      pools.clear();
    },
  };
}
