import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { FastCounter, FastHistogram, type HistogramChild } from './fast-metrics.ts';

/** fedgate's Prometheus metrics, one registry per application instance. */
export interface Metrics {
  registry: Registry;
  /** Counts a request and records its latency. */
  observeRequest(route: string, method: string, status: number, seconds: number): void;
  /** Counts a token endpoint success. */
  tokenIssued(grantType: string): void;
  /** Counts a gateway decision (`allow` or `deny`) for a configured service. */
  authzDecision(service: string, outcome: 'allow' | 'deny'): void;
  logins: Counter<'method' | 'outcome'>;
  /** Audit events that could not be kept (buffer full during an outage, refused, or pending at shutdown). */
  auditEventsDropped: Counter<'reason'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'fedgate_' });
  const httpRequests = new FastCounter(registry, 'fedgate_http_requests_total', 'HTTP requests by route, method and status code', ['route', 'method', 'status']);
  const httpDuration = new FastHistogram(registry, 'fedgate_http_request_duration_seconds', 'HTTP request latency by route', ['route', 'method'],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]);
  const tokensIssued = new FastCounter(registry, 'fedgate_tokens_issued_total', 'Token endpoint successes by grant type', ['grant_type']);

  const decisions = new FastCounter(registry, 'fedgate_authz_decisions_total', 'Gateway policy decisions (/api and /authz) by service and outcome', ['service', 'outcome']);
  const decisionChildren = new Map<string, { value: number }>();

  // Route labels are a fixed set, so this cache of resolved children stays small.
  const requestChildren = new Map<string, { counter: { value: number }; histogram: HistogramChild }>();
  // The last request's labels and children: under load one route answers request after request, and
  // comparing three values costs less than building and hashing a key for every request.
  let last = { route: '', method: '', status: 0, child: undefined as { counter: { value: number }; histogram: HistogramChild } | undefined };
  const grantChildren = new Map<string, { value: number }>();
  return {
    registry,
    observeRequest(route, method, status, seconds) {
      let child = last.route === route && last.method === method && last.status === status ? last.child : undefined;
      if (!child) {
        const key = `${route} ${method} ${status}`;
        child = requestChildren.get(key);
        if (!child) {
          child = { counter: httpRequests.labels(route, method, String(status)), histogram: httpDuration.labels(route, method) };
          requestChildren.set(key, child);
        }
        last = { route, method, status, child };
      }
      child.counter.value += 1;
      child.histogram.observe(seconds);
    },
    authzDecision(service, outcome) {
      // Services are the configured ones only (unknown names are refused before a decision).
      const key = `${service} ${outcome}`;
      let child = decisionChildren.get(key);
      if (!child) {
        child = decisions.labels(service, outcome);
        decisionChildren.set(key, child);
      }
      child.value += 1;
    },
    tokenIssued(grantType) {
      let child = grantChildren.get(grantType);
      if (!child) {
        // Grant types are oidc-provider's registered ones (an unknown one is refused before a token is issued).
        child = tokensIssued.labels(grantType);
        grantChildren.set(grantType, child);
      }
      child.value += 1;
    },
    auditEventsDropped: new Counter({
      name: 'fedgate_audit_events_dropped_total',
      help: 'Audit events dropped (and logged) because they could not be stored: buffer_full, refused or shutdown',
      labelNames: ['reason'] as const,
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
