/**
 * The load generator: autocannon's programmatic API, run in the benchmark
 * parent against a server child. A warm-up run is made first and discarded.
 */
import { createRequire } from 'node:module';

/** One entry of autocannon's `requests`: a request rebuilt before each send, and what it learns from the answer. */
interface AutocannonRequest {
  setupRequest?: (request: { body?: string | Buffer }, context: object) => { body?: string | Buffer };
  onResponse?: (status: number, body: string, context: object) => void;
}

/** The part of autocannon's options this harness uses. */
interface AutocannonOptions {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  requests?: AutocannonRequest[];
  connections?: number;
  pipelining?: number;
  duration?: number;
  timeout?: number;
}

/** The part of autocannon's result this harness uses (latencies in ms). */
interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  statusCodeStats: Record<string, { count: number }>;
  latency: { p50: number; p90: number; p99: number; average: number; max: number };
  requests: { average: number; total: number; sent: number };
}

type Autocannon = (options: AutocannonOptions) => Promise<AutocannonResult>;

// autocannon is CommonJS and ships no types.
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export interface LoadRequest {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  /**
   * For a request that cannot simply repeat (a refresh token is used once):
   * `body()` gives the body of each request as it is sent (it replaces
   * `body`), and `onResponse` sees every answer (e.g. to keep the new
   * refresh token for a later request).
   */
  dynamic?: { body(): string; onResponse(status: number, body: string): void };
}

export interface LoadOptions {
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
}

export interface LoadResult {
  /** Successful (2xx) responses per second of the measured run. */
  requestsPerSec: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  /** Responses in the measured run: 2xx, and anything else (non-2xx, socket errors, timeouts). */
  ok: number;
  non2xx: number;
  errors: number;
  statusCodes: Record<string, number>;
  durationSeconds: number;
}

/** Warm-up (discarded), then the measured run. */
export async function runLoad(request: LoadRequest, options: LoadOptions): Promise<LoadResult> {
  await warmUp(request, options);
  return measure(request, options);
}

async function fire(request: LoadRequest, connections: number, duration: number): Promise<AutocannonResult> {
  return autocannon({
    url: request.url,
    method: request.method,
    headers: request.headers,
    ...(request.body === undefined ? {} : { body: request.body }),
    ...(request.dynamic ? { requests: [dynamicRequest(request.dynamic)] } : {}),
    connections,
    pipelining: 1,
    duration,
    timeout: 10,
  });
}

function dynamicRequest(dynamic: NonNullable<LoadRequest['dynamic']>): AutocannonRequest {
  return {
    setupRequest: (req) => ({ ...req, body: dynamic.body() }),
    onResponse: (status, body) => dynamic.onResponse(status, body),
  };
}

/** The warm-up run: same load, result discarded. */
export async function warmUp(request: LoadRequest, options: LoadOptions): Promise<void> {
  if (options.warmupSeconds > 0) await fire(request, options.connections, options.warmupSeconds);
}

/** The measured run (call warmUp first). */
export async function measure(request: LoadRequest, options: LoadOptions): Promise<LoadResult> {
  const r = await fire(request, options.connections, options.durationSeconds);
  return {
    requestsPerSec: r['2xx'] / r.duration,
    p50Ms: r.latency.p50,
    p90Ms: r.latency.p90,
    p99Ms: r.latency.p99,
    ok: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats).map(([code, { count }]) => [code, count])),
    durationSeconds: r.duration,
  };
}
