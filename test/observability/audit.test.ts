import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Audit, AUDIT_STREAM, type AuditEvent } from '../../src/observability/audit.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createMetrics } from '../../src/observability/metrics.ts';
import { MemoryStore, RedisStore } from '../../src/store/index.ts';
import { LogCapture, within } from '../support/harness.ts';
import { PrivateRedis } from '../support/private-redis.ts';

describe('audit trail', () => {
  it('stores events in order across batches, and record resolves once its event is stored', async () => {
    const store = new MemoryStore();
    const audit = new Audit(store, createLogger('silent'), 10_000);
    const writes = Array.from({ length: 600 }, (_, i) => audit.record({ type: 'token.issued', actor: `client:c${i}`, outcome: 'success' }));
    await writes[0];
    assert.ok((await store.readStream(AUDIT_STREAM, 1000)).length >= 1, 'the first event is stored once its promise resolves');
    await Promise.all(writes);
    const events = await audit.recent(1000);
    assert.equal(events.length, 600);
    assert.deepEqual(events.map((e) => e.actor), Array.from({ length: 600 }, (_, i) => `client:c${599 - i}`), 'newest first, none lost, none reordered');
    assert.ok(events.every((e) => typeof e.time === 'string' && e.id));
    await store.close();
  });

  it('writes a routine event (note) within its own delay, and sooner with an event that is waited for, in the order recorded', async () => {
    const store = new MemoryStore();
    const audit = new Audit(store, createLogger('silent'), 10_000, { routineFlushMs: 600 });
    const stored = async () => (await store.readStream(AUDIT_STREAM, 100)).map(({ fields }) => (JSON.parse(fields.event!) as AuditEvent).actor);
    try {
      audit.note({ type: 'token.issued', actor: 'client:a', outcome: 'success' });
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.deepEqual(await stored(), [], 'a routine event waits longer than the 20 ms of one waited for');
      await within(3000, async () => (await stored()).length === 1);

      // A waited-for event takes the routine ones buffered before it along, and resolves once all are stored.
      audit.note({ type: 'token.issued', actor: 'client:b', outcome: 'success' });
      audit.note({ type: 'token.issued', actor: 'client:c', outcome: 'success' });
      const started = performance.now();
      await audit.record({ type: 'login', actor: 'alice', outcome: 'success' });
      assert.ok(performance.now() - started < 500, 'not held to the routine delay');
      assert.deepEqual(await stored(), ['alice', 'client:c', 'client:b', 'client:a'], 'newest first: in the order recorded');

      // Reading the trail writes what is buffered first.
      audit.note({ type: 'token.issued', actor: 'client:d', outcome: 'success' });
      assert.equal((await audit.recent(10))[0]?.actor, 'client:d');
      const [event] = await audit.recent(1);
      assert.deepEqual(Object.keys(event!).slice(0, 3), ['id', 'time', 'eventId'], 'stored as { time, eventId, ...event }');
      assert.match(event!.eventId, /^[0-9a-f-]{36}$/);
    } finally {
      await audit.close();
      await store.close();
    }
  });

  it('writes a burst of routine events in full batches, none lost or reordered, without waiting for the routine delay', async () => {
    const store = new MemoryStore();
    const appended: number[] = [];
    const append = store.appendToStream.bind(store);
    store.appendToStream = (key, entries, maxLength) => {
      appended.push(entries.length);
      return append(key, entries, maxLength);
    };
    // A routine delay far longer than the test: what is written is written because a batch filled.
    const audit = new Audit(store, createLogger('silent'), 10_000, { routineFlushMs: 60_000 });
    try {
      for (let i = 0; i < 600; i += 1) audit.note({ type: 'token.issued', actor: `client:c${i}`, outcome: 'success', client: `c${i}`, detail: { scope: 'storage.read:/' } });
      // A full batch starts a write of everything buffered, at most 256 per round trip.
      await within(3000, async () => audit.pending === 0);
      assert.ok(appended.every((n) => n <= 256), `batches of at most 256 (${appended.join(', ')})`);
      assert.equal(appended.reduce((a, b) => a + b, 0), 600);
      assert.ok(appended.length <= 4, `a few round trips, not one per event (${appended.length})`);
      const events = (await store.readStream(AUDIT_STREAM, 1000)).map(({ fields }) => JSON.parse(fields.event!) as AuditEvent);
      assert.deepEqual(events.map((e) => e.actor), Array.from({ length: 600 }, (_, i) => `client:c${599 - i}`), 'newest first, none lost, none reordered');
    } finally {
      await audit.close();
      await store.close();
    }
  });

  it('logs every event at once and never throws when the store fails', async () => {
    const logs = new LogCapture();
    const store = new MemoryStore();
    await store.set(AUDIT_STREAM, 'not a stream');
    const audit = new Audit(store, createLogger('info', logs), 100);
    await audit.record({ type: 'login.failed', actor: 'username:eve', outcome: 'failure', ip: '127.0.0.1', detail: { reason: 'bad_credentials' } });
    assert.match(logs.text, /audit login\.failed failure/);
    assert.match(logs.text, /audit events could not be stored/);
    await store.close();
  });
});

describe('audit trail through a Redis outage (its own redis-server)', () => {
  const DEADLINE_MS = 300;
  let redis: PrivateRedis;
  before(async () => { redis = await PrivateRedis.start(); });
  after(async () => {
    redis.thaw();
    await redis.kill();
  });

  const event = (i: number): AuditEvent => ({ type: 'token.issued', actor: `client:c${i}`, outcome: 'success', detail: { n: i } });
  const storeOn = () => new RedisStore({ url: redis.url, keyPrefix: `audit-${Math.random()}:`, deadlineMs: DEADLINE_MS });

  it('keeps events while Redis is frozen or down, without holding up requests, and stores all of them in order when it is back', async () => {
    const store = storeOn();
    const audit = new Audit(store, createLogger('silent'), 10_000, { retryMs: 50 });
    try {
      await audit.record(event(0));
      redis.freeze();
      const start = performance.now();
      for (let i = 1; i <= 50; i += 1) await audit.record(event(i));
      assert.ok(performance.now() - start < DEADLINE_MS + 500, 'recording waits at most one store deadline in all');
      assert.ok(audit.pending >= 50, `kept in memory (${audit.pending})`);
      redis.thaw();
      await within(5000, async () => audit.pending === 0);
      const events = await audit.recent(1000);
      assert.deepEqual(events.map((e) => e.actor), Array.from({ length: 51 }, (_, i) => `client:c${50 - i}`), 'none lost, none reordered');
    } finally {
      await audit.close();
      await store.close();
    }
  });

  it('drops what exceeds the bound: counted in the metric, each dropped event logged; the rest is stored once Redis is back', async () => {
    const store = storeOn();
    const logs = new LogCapture();
    const metrics = createMetrics();
    const one = Buffer.byteLength(JSON.stringify({ time: new Date().toISOString(), eventId: randomUUID(), ...event(10) }));
    const audit = new Audit(store, createLogger('info', logs), 10_000, {
      retryMs: 50, bufferBytes: one * 10, onDropped: (count, reason) => metrics.auditEventsDropped.inc({ reason }, count),
    });
    try {
      await redis.kill();
      for (let i = 10; i < 30; i += 1) await audit.record(event(i));
      assert.equal(audit.pending, 10);
      const metric = await metrics.registry.getSingleMetricAsString('fedgate_audit_events_dropped_total');
      assert.match(metric, /fedgate_audit_events_dropped_total\{reason="buffer_full"\} 10/);
      const dropped = logs.lines.map((l) => JSON.parse(l) as { msg: string; audit?: { actor: string } }).filter((l) => l.msg === 'audit event dropped');
      assert.deepEqual(dropped.map((l) => l.audit?.actor), Array.from({ length: 10 }, (_, i) => `client:c${20 + i}`), 'each dropped event is in the log');
      await redis.restart();
      await within(5000, async () => audit.pending === 0);
      const events = await audit.recent(100);
      assert.deepEqual(events.map((e) => e.actor).reverse(), Array.from({ length: 10 }, (_, i) => `client:c${10 + i}`));
    } finally {
      await audit.close();
      await store.close();
    }
  });

  it('at shutdown during an outage, logs and counts what it could not store', async () => {
    const store = storeOn();
    const logs = new LogCapture();
    let shutdownDrops = 0;
    const audit = new Audit(store, createLogger('info', logs), 10_000, { onDropped: (n, reason) => { if (reason === 'shutdown') shutdownDrops += n; } });
    await redis.kill();
    try {
      await audit.record(event(1));
      await audit.record(event(2));
      await audit.close();
      assert.equal(shutdownDrops, 2);
      assert.equal(audit.pending, 0);
      assert.equal(logs.lines.filter((l) => l.includes('"audit event dropped"') && l.includes('"reason":"shutdown"')).length, 2);
    } finally {
      await store.close();
      await redis.restart();
    }
  });
});
