import { SpanKind, trace, type Attributes } from '@opentelemetry/api';
import { inSpan } from '@fedmm/core';
import type { Check, Entry, Store, Write } from '@fedmm/store';

const tracer = trace.getTracer('@fedmm/telemetry');

/**
 * Wraps a store so that each operation is a client span (`redis get`, `redis atomic`, ...) in
 * the active trace, with the database semantic-convention attributes. Values never go on spans.
 */
export function tracedStore(store: Store): Store {
  const system = store.kind;
  const run = <T>(op: string, attributes: Attributes, fn: () => Promise<T>): Promise<T> =>
    inSpan(tracer, `${system} ${op}`, { kind: SpanKind.CLIENT, attributes: { 'db.system': system, 'db.system.name': system, 'db.operation.name': op, ...attributes } }, () => fn());
  const key = (k: string): Attributes => ({ 'fedmm.store.key': k });
  return {
    kind: store.kind,
    get: (k: string): Promise<Entry | undefined> => run('get', key(k), () => store.get(k)),
    put: (k: string, v: string) => run('put', key(k), () => store.put(k, v)),
    delete: (k: string) => run('delete', key(k), () => store.delete(k)),
    compareAndSet: (k: string, expected: number, v: string) => run('compareAndSet', key(k), () => store.compareAndSet(k, expected, v)),
    atomic: (checks: Check[], writes: Write[]) =>
      run('atomic', { 'fedmm.store.checks': checks.length, 'fedmm.store.writes': writes.length, ...(writes[0] ? key(writes[0].key) : checks[0] ? key(checks[0].key) : {}) }, () => store.atomic(checks, writes)),
    increment: (k: string, delta: number) => run('increment', key(k), () => store.increment(k, delta)),
    list: (prefix: string, limit?: number) =>
      run('list', { 'fedmm.store.prefix': prefix }, async () => {
        const entries = await (limit === undefined ? store.list(prefix) : store.list(prefix, limit));
        trace.getActiveSpan()?.setAttribute('fedmm.store.entries', entries.length);
        return entries;
      }),
    close: () => store.close(),
  };
}
