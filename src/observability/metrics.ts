import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** fedgate's Prometheus metrics, one registry per application instance. */
export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'route' | 'method' | 'status'>;
  httpDuration: Histogram<'route' | 'method'>;
  tokensIssued: Counter<'grant_type'>;
  logins: Counter<'method' | 'outcome'>;
  /** Counts a request and records its latency. */
  observeRequest(route: string, method: string, status: number, seconds: number): void;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'fedgate_' });
  const httpRequests = new Counter({
    name: 'fedgate_http_requests_total',
    help: 'HTTP requests by route, method and status code',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [registry],
  });
  const httpDuration = new Histogram({
    name: 'fedgate_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['route', 'method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  // Label children cached by their (bounded) label values: prom-client would
  // otherwise hash the label object on every request.
  const children = new Map<string, { counter: { inc(): void }; histogram: { observe(v: number): void } }>();
  const observeRequest = (route: string, method: string, status: number, seconds: number) => {
    const key = `${route} ${method} ${status}`;
    let child = children.get(key);
    if (!child) {
      child = { counter: httpRequests.labels(route, method, String(status)), histogram: httpDuration.labels(route, method) };
      children.set(key, child);
    }
    child.counter.inc();
    child.histogram.observe(seconds);
  };
  return {
    registry,
    httpRequests,
    httpDuration,
    observeRequest,
    tokensIssued: new Counter({
      name: 'fedgate_tokens_issued_total',
      help: 'Token endpoint successes by grant type',
      labelNames: ['grant_type'] as const,
      registers: [registry],
    }),
    logins: new Counter({
      name: 'fedgate_logins_total',
      help: 'Interactive logins by method and outcome',
      labelNames: ['method', 'outcome'] as const,
      registers: [registry],
    }),
  };
}
