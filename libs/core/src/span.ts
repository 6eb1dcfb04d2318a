import { SpanStatusCode, context, type Context, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';

/**
 * Runs fn inside a new active span (a child of `parent`, default the active context) that records
 * an exception and an error status when fn throws, and always ends.
 */
export function inSpan<T>(tracer: Tracer, name: string, options: SpanOptions, fn: (span: Span) => Promise<T>, parent: Context = context.active()): Promise<T> {
  return tracer.startActiveSpan(name, options, parent, async (span) => {
    try {
      return await fn(span);
    } catch (e) {
      span.recordException(e as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (e as Error).message });
      throw e;
    } finally {
      span.end();
    }
  });
}
