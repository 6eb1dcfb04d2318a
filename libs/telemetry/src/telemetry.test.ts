import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { SqliteStore } from '@fedmm/store';
import { Attr, MetricNames, startTestTelemetry, telemetryResource, tracedStore } from './index.js';

const { exporter, telemetry } = startTestTelemetry('fedmm-telemetry-test');
after(() => telemetry.shutdown());

describe('resource', () => {
  test('OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME override the defaults', async () => {
    const saved = { attrs: process.env['OTEL_RESOURCE_ATTRIBUTES'], name: process.env['OTEL_SERVICE_NAME'] };
    try {
      delete process.env['OTEL_SERVICE_NAME'];
      process.env['OTEL_RESOURCE_ATTRIBUTES'] = 'k8s.pod.name=gateway-0,fedmm.component=gateway,service.namespace=prod';
      let r = telemetryResource('fedmm-gateway');
      await r.waitForAsyncAttributes?.();
      assert.equal(r.attributes['service.name'], 'fedmm-gateway');
      assert.equal(r.attributes['k8s.pod.name'], 'gateway-0');
      assert.equal(r.attributes['fedmm.component'], 'gateway');
      assert.equal(r.attributes['service.namespace'], 'prod');
      assert.equal(typeof r.attributes['host.name'], 'string');

      process.env['OTEL_SERVICE_NAME'] = 'edge';
      r = telemetryResource('fedmm-gateway');
      assert.equal(r.attributes['service.name'], 'edge');
    } finally {
      for (const [k, v] of [['OTEL_RESOURCE_ATTRIBUTES', saved.attrs], ['OTEL_SERVICE_NAME', saved.name]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  test('without environment attributes the service name and namespace are fedmm defaults', () => {
    const r = telemetryResource('fedmm-registry');
    if (process.env['OTEL_SERVICE_NAME'] === undefined) assert.equal(r.attributes['service.name'], 'fedmm-registry');
    if (process.env['OTEL_RESOURCE_ATTRIBUTES'] === undefined) assert.equal(r.attributes['service.namespace'], 'fedmm');
  });
});

describe('names', () => {
  test('metric labels are plain Prometheus label names', () => {
    for (const v of Object.values(Attr)) assert.match(v, /^[a-z_]+$/, `${v} would be renamed by Prometheus`);
    for (const v of Object.values(MetricNames)) assert.match(v, /^fedmm(\.[a-z]+)+$/);
    assert.equal(MetricNames.roundDuration, 'fedmm.round.duration.seconds', 'the histogram name carries its unit for both Prometheus paths');
  });
});

describe('tracedStore', () => {
  test('each operation is a client span in the active trace, failures are marked', async () => {
    exporter.reset();
    const inner = new SqliteStore(':memory:');
    const store = tracedStore(inner);
    // The same store with a connection that fails, to see the error on the span.
    const broken = tracedStore(Object.assign(Object.create(inner) as SqliteStore, { increment: () => Promise.reject(new Error('connection reset')) }));
    const parent = trace.getTracer('test');
    await parent.startActiveSpan('caller', async (span) => {
      const v = await store.put('fedmm:t:a', 'x');
      assert.equal(await store.compareAndSet('fedmm:t:a', v, 'y'), v + 1);
      assert.equal((await store.get('fedmm:t:a'))?.value, 'y');
      assert.equal((await store.list('fedmm:t:')).length, 1);
      await assert.rejects(broken.increment('fedmm:t:n', 1), /connection reset/);
      span.end();
    });
    await store.close();
    const spans = exporter.getFinishedSpans();
    const caller = spans.find((s) => s.name === 'caller')!;
    const ops = spans.filter((s) => s.name.startsWith('sqlite '));
    assert.deepEqual(ops.map((s) => s.name), ['sqlite put', 'sqlite compareAndSet', 'sqlite get', 'sqlite list', 'sqlite increment']);
    for (const s of ops) {
      assert.equal(s.kind, SpanKind.CLIENT);
      assert.equal(s.spanContext().traceId, caller.spanContext().traceId);
      assert.equal(s.parentSpanContext?.spanId, caller.spanContext().spanId);
      assert.equal(s.attributes['db.system.name'], 'sqlite');
    }
    assert.equal(ops[0]!.attributes['fedmm.store.key'], 'fedmm:t:a');
    assert.equal(ops[3]!.attributes['fedmm.store.entries'], 1);
    assert.equal(ops[4]!.status.code, SpanStatusCode.ERROR);
  });
});
