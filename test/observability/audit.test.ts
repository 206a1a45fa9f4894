import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Audit, AUDIT_STREAM } from '../../src/observability/audit.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { MemoryStore } from '../../src/store/index.ts';
import { LogCapture } from '../support/harness.ts';

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
