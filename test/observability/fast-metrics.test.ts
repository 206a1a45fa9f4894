/**
 * FastCounter and FastHistogram hand prom-client's registry objects in the
 * shape of its own metrics (`get()` → name, help, type, values, aggregator).
 * That shape is prom-client's, not a documented extension point, so
 * prom-client is pinned exactly (test/architecture/runtime-dependencies.test.ts) and this test compares the
 * exposition text with prom-client's own Counter and Histogram given the same
 * observations: a prom-client upgrade that changes the contract fails here.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../../src/observability/fast-metrics.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const OBSERVATIONS: Array<[string, string, number]> = [
  ['token', 'POST', 0.0004], ['token', 'POST', 0.02], ['token', 'POST', 0.5], ['token', 'POST', 3],
  ['jwks', 'GET', 0.001], ['jwks', 'GET', 0.0099], ['/authz', 'GET', 0.3],
];

describe('fast metrics against prom-client', () => {
  it('expose the same text as prom-client Counter and Histogram for the same observations', async () => {
    const fast = new Registry();
    const reference = new Registry();
    const fastCounter = new FastCounter(fast, 'demo_requests_total', 'Requests.', ['route', 'method']);
    const fastHistogram = new FastHistogram(fast, 'demo_duration_seconds', 'Durations.', ['route', 'method'], BUCKETS);
    const counter = new Counter({ name: 'demo_requests_total', help: 'Requests.', labelNames: ['route', 'method'], registers: [reference] });
    const histogram = new Histogram({ name: 'demo_duration_seconds', help: 'Durations.', labelNames: ['route', 'method'], buckets: BUCKETS, registers: [reference] });
    for (const [route, method, seconds] of OBSERVATIONS) {
      fastCounter.labels(route, method).value += 1;
      fastHistogram.labels(route, method).observe(seconds);
      counter.inc({ route, method });
      histogram.observe({ route, method }, seconds);
    }
    assert.equal(await fast.metrics(), await reference.metrics());
    assert.match(await fast.metrics(), /demo_duration_seconds_bucket\{le="0.01",route="token",method="POST"\} 1\n/);
  });

});
