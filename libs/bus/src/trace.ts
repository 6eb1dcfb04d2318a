import { context, propagation, trace, SpanKind, type Span } from '@opentelemetry/api';
import { inSpan } from '@fedmm/core';
import type { Headers } from './port.js';

const tracer = trace.getTracer('@fedmm/bus');

/** Writes the active trace context into message headers (W3C traceparent). */
export function injectTraceHeaders(headers: Headers = {}): Headers {
  const out: Headers = { ...headers };
  propagation.inject(context.active(), out);
  return out;
}

/** Runs fn inside a consumer span whose parent is the trace context carried by the headers. */
export async function withConsumerSpan<T>(topic: string, headers: Headers, fn: (span: Span) => Promise<T>): Promise<T> {
  const parent = propagation.extract(context.active(), headers);
  return inSpan(
    tracer,
    `${topic} process`,
    { kind: SpanKind.CONSUMER, attributes: { 'messaging.system': 'kafka', 'messaging.destination.name': topic, 'messaging.operation': 'process' } },
    fn,
    parent,
  );
}

/** Runs a publish inside a producer span. */
export async function withProducerSpan<T>(topic: string, count: number, fn: () => Promise<T>): Promise<T> {
  return inSpan(
    tracer,
    `${topic} publish`,
    { kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'kafka', 'messaging.destination.name': topic, 'messaging.operation': 'publish', 'messaging.batch.message_count': count } },
    () => fn(),
  );
}
