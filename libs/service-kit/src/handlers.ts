import {
  Metadata,
  status,
  type handleUnaryCall,
  type handleServerStreamingCall,
  type handleClientStreamingCall,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServerReadableStream,
} from '@grpc/grpc-js';
import { context, propagation, trace, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Logger } from '@fedmm/core';
import { toServiceError } from './status.js';

const tracer = trace.getTracer('@fedmm/service-kit');

/** What a handler knows about its call besides the request. */
export interface CallContext {
  metadata: Metadata;
  /** Aborts when the client cancels or the deadline passes. */
  signal: AbortSignal;
  peer: string;
  /** The underlying call, for transport details (the gateway reads the TLS peer certificate). */
  call: { getPeer(): string; getAuthContext?: () => unknown };
}

function metadataCarrier(md: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = typeof v === 'string' ? v : v.toString('utf8');
  return out;
}

function callContext(call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown> | ServerReadableStream<unknown, unknown>): CallContext {
  const ac = new AbortController();
  // The reason carries CANCELLED, so a handler that stops on it is not reported as an internal failure.
  (call as unknown as NodeJS.EventEmitter).on('cancelled', () => ac.abort(Object.assign(new Error('call cancelled by the client'), { code: status.CANCELLED, details: 'call cancelled by the client' })));
  return { metadata: call.metadata, signal: ac.signal, peer: call.getPeer(), call: call };
}

/** Span name and attributes of a call, from its path `/package.Service/Method` (semantic conventions for RPC). */
export function rpcSpanFields(path: string): { name: string; attributes: { 'rpc.system': 'grpc'; 'rpc.service': string; 'rpc.method': string } } {
  const name = path.startsWith('/') ? path.slice(1) : path;
  const slash = name.lastIndexOf('/');
  return { name, attributes: { 'rpc.system': 'grpc', 'rpc.service': slash < 0 ? '' : name.slice(0, slash), 'rpc.method': slash < 0 ? name : name.slice(slash + 1) } };
}

async function traced<T>(name: string, call: { metadata: Metadata; getPath?: () => string }, log: Logger, fn: () => Promise<T>): Promise<T> {
  const parent = propagation.extract(context.active(), metadataCarrier(call.metadata));
  // The transport knows the full method path; the handler's own name is the fallback.
  const fields = rpcSpanFields(call.getPath?.() ?? name);
  return tracer.startActiveSpan(fields.name, { kind: SpanKind.SERVER, attributes: fields.attributes }, parent, async (span) => {
    try {
      return await fn();
    } catch (e) {
      const se = toServiceError(e);
      span.setAttribute('rpc.grpc.status_code', se.code);
      span.setStatus({ code: SpanStatusCode.ERROR, message: se.details });
      if (se.code === (13 as typeof se.code)) log.error('handler failed', { method: name, err: e });
      else log.debug('request rejected', { method: name, code: se.code, details: se.details });
      throw e;
    } finally {
      span.end();
    }
  });
}

/** Wraps an async function as a unary handler: traces it and maps domain errors to status codes. */
export function unary<Req, Res>(name: string, log: Logger, fn: (req: Req, ctx: CallContext) => Promise<Res>): handleUnaryCall<Req, Res> {
  return (call, callback) => {
    traced(name, call, log, () => fn(call.request, callContext(call)))
      .then((res) => callback(null, res))
      .catch((e: unknown) => callback(toServiceError(e) as never));
  };
}

/** Wraps an async producer of messages as a server-streaming handler with backpressure. */
export function serverStream<Req, Res>(
  name: string,
  log: Logger,
  fn: (req: Req, write: (msg: Res) => Promise<void>, ctx: CallContext) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call) => {
    const ctx = callContext(call);
    const write = (msg: Res): Promise<void> =>
      new Promise((resolve, reject) => {
        if (ctx.signal.aborted) return reject(ctx.signal.reason as Error);
        const ok = call.write(msg);
        if (ok) return resolve();
        const onDrain = (): void => { ctx.signal.removeEventListener('abort', onAbort); resolve(); };
        const onAbort = (): void => { call.off('drain', onDrain); reject(ctx.signal.reason as Error); };
        call.once('drain', onDrain);
        ctx.signal.addEventListener('abort', onAbort, { once: true });
      });
    traced(name, call, log, () => fn(call.request, write, ctx))
      .then(() => call.end())
      .catch((e: unknown) => {
        if (ctx.signal.aborted) return;
        call.emit('error', toServiceError(e));
      });
  };
}

/** Wraps an async consumer of a message stream as a client-streaming handler. */
export function clientStream<Req, Res>(
  name: string,
  log: Logger,
  fn: (messages: AsyncIterable<Req>, ctx: CallContext) => Promise<Res>,
): handleClientStreamingCall<Req, Res> {
  return (call, callback) => {
    const ctx = callContext(call);
    traced(name, call, log, () => fn(call as AsyncIterable<Req>, ctx))
      .then((res) => callback(null, res))
      .catch((e: unknown) => callback(toServiceError(e) as never));
  };
}
