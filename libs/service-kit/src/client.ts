import { Client, Metadata, credentials as grpcCredentials, type ChannelCredentials, type ClientReadableStream, type ClientWritableStream, type ServiceError, type CallOptions } from '@grpc/grpc-js';
import { context, propagation, trace, SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { fromServiceError } from './status.js';
import { rpcSpanFields } from './handlers.js';

const tracer = trace.getTracer('@fedmm/service-kit');

interface MethodDef {
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize: (v: never) => Buffer;
  responseDeserialize: (b: Buffer) => unknown;
}

type Req<M> = M extends { requestSerialize: (v: infer R) => Buffer } ? R : never;
type Res<M> = M extends { responseDeserialize: (b: Buffer) => infer R } ? R : never;

export interface RpcOptions {
  deadlineMs?: number;
  metadata?: Metadata;
}

/** A typed promise client over a generated service definition. */
export type RpcClient<D> = {
  [K in keyof D]: D[K] extends { requestStream: false; responseStream: false }
    ? (req: Req<D[K]>, opts?: RpcOptions) => Promise<Res<D[K]>>
    : D[K] extends { requestStream: false; responseStream: true }
      ? (req: Req<D[K]>, opts?: RpcOptions) => ClientReadableStream<Res<D[K]>>
      : D[K] extends { requestStream: true; responseStream: false }
        ? (opts: RpcOptions, callback: (err: Error | null, res?: Res<D[K]>) => void) => ClientWritableStream<Req<D[K]>>
        : never;
} & { close(): void; raw: Client };

/** Trace context of the active span, as gRPC metadata. */
export function tracedMetadata(md: Metadata = new Metadata()): Metadata {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  for (const [k, v] of Object.entries(carrier)) md.set(k, v);
  return md;
}

// Streaming calls outlive the caller's stack, so their spans are started and ended by hand.
function startClientSpan(path: string): Span {
  const fields = rpcSpanFields(path);
  return tracer.startSpan(fields.name, { kind: SpanKind.CLIENT, attributes: fields.attributes });
}

function endClientSpan(span: Span, code: number, details: string): void {
  if (code !== 0) {
    span.setAttribute('rpc.grpc.status_code', code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: details });
  }
  span.end();
}

function options(opts?: RpcOptions): Partial<CallOptions> {
  return opts?.deadlineMs ? { deadline: new Date(Date.now() + opts.deadlineMs) } : {};
}

/** Creates a client for a generated service definition; unary methods return promises of domain results. */
export function createRpcClient<D extends Record<string, MethodDef>>(
  definition: D,
  address: string,
  creds: ChannelCredentials = grpcCredentials.createInsecure(),
  channelOptions: Record<string, string | number> = {},
): RpcClient<D> {
  const client = new Client(address, creds, {
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.max_receive_message_length': 8 * 1024 * 1024,
    'grpc.max_send_message_length': 8 * 1024 * 1024,
    // Node's default 64 KiB HTTP/2 window caps downloads far below the link.
    'grpc-node.flow_control_window': 8 * 1024 * 1024,
    ...channelOptions,
  });
  const out: Record<string, unknown> = { close: () => client.close(), raw: client };
  for (const [name, def] of Object.entries(definition)) {
    if (!def.requestStream && !def.responseStream) {
      out[name] = (req: unknown, opts?: RpcOptions) =>
        tracer.startActiveSpan(rpcSpanFields(def.path).name, { kind: SpanKind.CLIENT, attributes: rpcSpanFields(def.path).attributes }, (span) =>
          new Promise((resolve, reject) => {
            client.makeUnaryRequest(def.path, def.requestSerialize as (v: unknown) => Buffer, def.responseDeserialize, req, tracedMetadata(opts?.metadata), options(opts), (err: ServiceError | null, res?: unknown) => {
              endClientSpan(span, err ? err.code : 0, err?.details ?? '');
              if (err) reject(fromServiceError(err, `${def.path} at ${address}`));
              else resolve(res);
            });
          }));
    } else if (!def.requestStream && def.responseStream) {
      out[name] = (req: unknown, opts?: RpcOptions) => {
        const span = startClientSpan(def.path);
        const call = context.with(trace.setSpan(context.active(), span), () =>
          client.makeServerStreamRequest(def.path, def.requestSerialize as (v: unknown) => Buffer, def.responseDeserialize, req, tracedMetadata(opts?.metadata), options(opts)));
        call.on('status', (st: { code: number; details: string }) => endClientSpan(span, st.code, st.details));
        return call;
      };
    } else if (def.requestStream && !def.responseStream) {
      out[name] = (opts: RpcOptions, cb: (err: Error | null, res?: unknown) => void) => {
        const span = startClientSpan(def.path);
        return context.with(trace.setSpan(context.active(), span), () =>
          client.makeClientStreamRequest(def.path, def.requestSerialize as (v: unknown) => Buffer, def.responseDeserialize, tracedMetadata(opts?.metadata), options(opts), (err: ServiceError | null, res?: unknown) => {
            endClientSpan(span, err ? err.code : 0, err?.details ?? '');
            if (err) cb(fromServiceError(err, `${def.path} at ${address}`));
            else cb(null, res);
          }));
      };
    }
  }
  return out as RpcClient<D>;
}
