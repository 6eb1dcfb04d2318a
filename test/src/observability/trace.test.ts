import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SpanKind, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTestTelemetry } from '@fedmm/telemetry';
import { FedmmError, waitFor } from '@fedmm/core';
import { checkHealth } from '@fedmm/service-kit';
import { buildUpdate, upload } from '../gateway/updates.js';
import { LAYOUT, startPlatform, type Platform } from './platform.js';

// Telemetry first: every tracer the services hold delegates to this provider.
const { exporter, telemetry } = startTestTelemetry('fedmm-platform');
let p: Platform;

before(async () => {
  p = await startPlatform(7);
});

after(async () => {
  await p.stop();
  await telemetry.shutdown();
});

test('one upload is one trace: agent, gateway, coordinator, Kafka, worker and Redis', { timeout: 90_000 }, async () => {
  const taskId = await p.openTask();
  exporter.reset();
  const u = buildUpdate(taskId, 1, 'up-1', LAYOUT.map((t) => ({ ...t, dtype: 'F32' as const })));
  const agent = p.agent('acme');
  const root = await trace.getTracer('agent').startActiveSpan('agent upload', async (span) => {
    try {
      const res = await upload(agent, u);
      assert.equal(res.complete, true);
      return span;
    } finally {
      span.end();
    }
  });
  const traceId = root.spanContext().traceId;
  const inTrace = (): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
  // The worker consumes the verdicts asynchronously; wait until it has processed them.
  await waitFor(async () => inTrace().some((s) => s.kind === SpanKind.CONSUMER && s.name === 'fedmm.updates process' && inTrace().some((c) => c.parentSpanContext?.spanId === s.spanContext().spanId)), { timeoutMs: 30_000, what: 'the worker to consume the upload', intervalMs: 100 });
  const spans = inTrace();
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const parentOf = (s: ReadableSpan): ReadableSpan | undefined => (s.parentSpanContext ? byId.get(s.parentSpanContext.spanId) : undefined);
  const one = (pred: (s: ReadableSpan) => boolean, what: string): ReadableSpan => {
    const found = spans.filter(pred);
    assert.equal(found.length, 1, `one ${what} span in the trace, found ${found.length}: ${spans.map((s) => s.name).join(', ')}`);
    return found[0]!;
  };

  // A connected tree: every span but the agent's root has its parent in the same trace.
  const rootSpan = one((s) => s.name === 'agent upload', 'root');
  assert.equal(rootSpan.parentSpanContext, undefined);
  for (const s of spans) if (s !== rootSpan) assert.ok(parentOf(s), `${s.name} hangs off a span outside the trace`);

  // Agent -> gateway over mTLS gRPC: the context travelled in the call's metadata.
  const agentCall = one((s) => s.kind === SpanKind.CLIENT && s.name === 'fedmm.v1.GatewayService/UploadUpdate', 'agent call');
  assert.equal(parentOf(agentCall), rootSpan);
  const gateway = one((s) => s.kind === SpanKind.SERVER && s.name === 'fedmm.v1.GatewayService/UploadUpdate' && s.attributes['rpc.service'] === 'fedmm.v1.GatewayService' && s.attributes['rpc.method'] === 'UploadUpdate', 'gateway handler');
  assert.equal(parentOf(gateway), agentCall);

  // Gateway -> coordinator: policy and report, each a client span with the coordinator's server span under it, and its Redis calls under that.
  for (const method of ['GetUploadPolicy', 'ReportUpdateReceived']) {
    const call = one((s) => s.kind === SpanKind.CLIENT && s.name === `fedmm.v1.AggregatorService/${method}`, `${method} call`);
    assert.equal(parentOf(call), gateway);
    const server = one((s) => s.kind === SpanKind.SERVER && parentOf(s) === call, `${method} handler`);
    const redis = spans.filter((s) => s.kind === SpanKind.CLIENT && s.attributes['db.system'] === 'redis' && parentOf(s) === server);
    assert.ok(redis.length > 0, `the coordinator's ${method} reads Redis inside the trace`);
  }

  // Gateway -> Kafka -> worker: producer spans under the handler, consumer spans parented by the producer whose message they process.
  const producers = spans.filter((s) => s.kind === SpanKind.PRODUCER);
  assert.ok(producers.length >= 2, 'chunks and verdicts are published');
  for (const pr of producers) {
    assert.equal(parentOf(pr), gateway);
    assert.equal(pr.attributes['messaging.system'], 'kafka');
    assert.equal(pr.attributes['messaging.destination.name'], 'fedmm.updates');
  }
  const consumers = spans.filter((s) => s.kind === SpanKind.CONSUMER);
  assert.ok(consumers.length > 0);
  for (const c of consumers) assert.equal(parentOf(c)?.kind, SpanKind.PRODUCER, `${c.name} continues a producer span`);
  const consumed = new Set(consumers.map((c) => parentOf(c)));
  for (const pr of producers) assert.ok(consumed.has(pr), 'the worker consumed every published batch inside the trace');
  // The worker folds an accepted verdict after reading the round from Redis, still in the upload's trace.
  assert.ok(spans.some((s) => s.attributes['db.system'] === 'redis' && parentOf(s)?.kind === SpanKind.CONSUMER), 'the worker reads Redis inside the trace');

  // The gateway's own Redis calls (upload session state) are traced too.
  assert.ok(spans.some((s) => s.attributes['db.system'] === 'redis' && parentOf(s) === gateway));
  for (const s of spans) assert.equal(s.resource.attributes['service.name'], 'fedmm-platform');
});

test("the round's publication to the registry is linked to every upload's trace", { timeout: 90_000 }, async () => {
  const taskId = await p.openTask({ selection: { fraction: 0.01, minClients: 1, maxClients: 1 } });
  const round = (await p.coordinator.getRound({ taskId, number: 1 })).round!;
  const tenant = round.selected[0]!;
  exporter.reset();
  const u = buildUpdate(taskId, 1, 'up-link', LAYOUT.map((t) => ({ ...t, dtype: 'F32' as const })));
  const root = await trace.getTracer('agent').startActiveSpan('agent upload', async (span) => {
    try {
      assert.equal((await upload(p.agent(tenant), u)).complete, true);
      return span;
    } finally {
      span.end();
    }
  });
  const uploadTrace = root.spanContext().traceId;
  const publish = await waitFor(() => exporter.getFinishedSpans().find((s) => s.name === 'round publish' && s.attributes['task'] === taskId), { timeoutMs: 60_000, what: 'the round to publish', intervalMs: 200 });
  assert.ok(publish.links.some((l) => l.context.traceId === uploadTrace), 'the publication links to the upload trace');
  const inPublish = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === publish.spanContext().traceId);
  assert.ok(inPublish.some((s) => s.kind === SpanKind.SERVER && /RegistryService\/AssembleRoundVersion/.test(s.name)), `the registry assembling the version is in the publication's trace: ${inPublish.map((s) => s.name).join(', ')}`);
});

test('the mTLS gateway answers plaintext health probes on its health port only', async () => {
  const health = p.gateway.healthServer;
  assert.ok(health, 'FEDMM_HEALTH_PORT starts a health server');
  assert.equal(await checkHealth(health.address), 'SERVING');
  assert.equal(await checkHealth(health.address, { service: 'fedmm.v1.GatewayService' }), 'SERVING');
  // A probe without a client certificate cannot speak to the main port.
  await assert.rejects(checkHealth(p.gateway.address, { deadlineMs: 2000 }), (e: unknown) => e instanceof FedmmError && e.code === 'UNAVAILABLE');
});
