import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, SimpleSpanProcessor, type SpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { PeriodicExportingMetricReader, type IMetricReader } from '@opentelemetry/sdk-metrics';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { detectResources, envDetector, hostDetector, processDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { trace, context } from '@opentelemetry/api';
import { setTraceFieldProvider } from '@fedmm/core';

export interface TelemetryOptions {
  serviceName: string;
  /** OTLP/HTTP endpoint; default from OTEL_EXPORTER_OTLP_ENDPOINT. Unset: no OTLP export. */
  otlpEndpoint?: string;
  /** Port of a Prometheus scrape endpoint; default from FEDMM_PROMETHEUS_PORT. Unset: none. */
  prometheusPort?: number;
  /** Extra span processors (tests use an in-memory exporter). */
  spanProcessors?: SpanProcessor[];
  metricExportIntervalMs?: number;
}

export interface Telemetry {
  shutdown(): Promise<void>;
  prometheusPort: number | undefined;
}

let started: Telemetry | undefined;

/**
 * The process's resource: fedmm's defaults, then what the environment says (OTEL_RESOURCE_ATTRIBUTES,
 * OTEL_SERVICE_NAME win over the defaults, as the OpenTelemetry specification asks), then host and
 * process facts.
 */
export function telemetryResource(serviceName: string): Resource {
  const defaults = resourceFromAttributes({ 'service.name': serviceName, 'service.namespace': 'fedmm' });
  return defaults.merge(detectResources({ detectors: [hostDetector, processDetector, envDetector] }));
}

/**
 * Starts the OpenTelemetry SDK (traces and metrics). Call before the application creates its
 * servers and clients; later calls return the first instance.
 */
export function startTelemetry(opts: TelemetryOptions): Telemetry {
  if (started) return started;
  const endpoint = opts.otlpEndpoint ?? process.env['OTEL_EXPORTER_OTLP_ENDPOINT'];
  const promEnv = process.env['FEDMM_PROMETHEUS_PORT'];
  const prometheusPort = opts.prometheusPort ?? (promEnv ? Number(promEnv) : undefined);
  // The SDK reads exporters from the environment too; fedmm configures them explicitly.
  process.env['OTEL_TRACES_EXPORTER'] ??= 'none';
  process.env['OTEL_METRICS_EXPORTER'] ??= 'none';
  process.env['OTEL_LOGS_EXPORTER'] ??= 'none';

  const spanProcessors: SpanProcessor[] = [...(opts.spanProcessors ?? [])];
  if (endpoint) spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, '')}/v1/traces` })));
  const metricReaders: IMetricReader[] = [];
  if (endpoint) {
    metricReaders.push(new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter({ url: `${endpoint.replace(/\/$/, '')}/v1/metrics` }),
      exportIntervalMillis: opts.metricExportIntervalMs ?? 15_000,
    }));
  }
  if (prometheusPort !== undefined && Number.isFinite(prometheusPort)) {
    metricReaders.push(new PrometheusExporter({ port: prometheusPort, host: process.env['FEDMM_PROMETHEUS_HOST'] ?? '0.0.0.0' }));
  }
  const sdk = new NodeSDK({
    resource: telemetryResource(opts.serviceName),
    spanProcessors,
    metricReaders,
    instrumentations: [],
    // The resource above already ran the detectors in the order fedmm wants.
    autoDetectResources: false,
  });
  sdk.start();
  setTraceFieldProvider(() => {
    const span = trace.getSpan(context.active());
    if (!span) return {};
    const sc = span.spanContext();
    return { trace_id: sc.traceId, span_id: sc.spanId };
  });
  started = { shutdown: () => sdk.shutdown(), prometheusPort };
  return started;
}

/** Starts telemetry with an in-memory span exporter, for tests that assert on traces. */
export function startTestTelemetry(serviceName = 'fedmm-test'): { exporter: InMemorySpanExporter; telemetry: Telemetry } {
  const exporter = new InMemorySpanExporter();
  const telemetry = startTelemetry({ serviceName, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  return { exporter, telemetry };
}
