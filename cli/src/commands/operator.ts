import { FedmmError } from '@fedmm/core';
import { DefaultPorts, createRpcClient, fromServiceError, type RpcClient } from '@fedmm/service-kit';
import { aggregator as apb, task as tpb } from '@fedmm/proto';
import { UsageError } from '../command.js';

/** The aggregator address an operator command talks to when --addr is not given. */
export const DEFAULT_AGGREGATOR = process.env['FEDMM_AGGREGATOR_ADDR'] ?? `127.0.0.1:${DefaultPorts.aggregator}`;

export type AggregatorClient = RpcClient<typeof apb.AggregatorServiceService>;

/** Runs `fn` with an aggregator client and turns gRPC failures into messages that name the call. */
export async function withAggregator<T>(addr: string, what: string, fn: (c: AggregatorClient) => Promise<T>): Promise<T> {
  const client = createRpcClient(apb.AggregatorServiceService, addr);
  try {
    return await fn(client);
  } catch (e) {
    const err = fromServiceError(e, `${what} (aggregator at ${addr})`);
    if (err.code === 'UNAVAILABLE') {
      throw new FedmmError('UNAVAILABLE', `${what}: cannot reach the aggregator at ${addr}; start the platform (fedmm demo --keep-running, or fedmm serve aggregator) or pass --addr HOST:PORT`);
    }
    throw err;
  } finally {
    client.close();
  }
}

/** Lower-case name of a round state ("published"). */
export function roundStateName(s: tpb.RoundState): string {
  return (tpb.RoundState[s] ?? 'UNKNOWN').replace(/^ROUND_STATE_/, '').toLowerCase();
}

/** A proto timestamp (or Date) in milliseconds since the epoch; 0 when unset. */
export function millis(t: Date | { seconds: number; nanos: number } | undefined): number {
  if (!t) return 0;
  return t instanceof Date ? t.getTime() : t.seconds * 1000 + Math.floor(t.nanos / 1e6);
}

/** A timestamp as a short UTC time, or '-'. */
export function when(t: Date | { seconds: number; nanos: number } | undefined): string {
  const ms = millis(t);
  return ms > 0 ? new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-';
}

/** Renders rows as an aligned table with a header line. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** Parses a positive integer flag, or the fallback when absent. */
export function intFlag(flag: string, v: string | undefined, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${flag} must be an integer >= ${min}, not ${JSON.stringify(v)}`);
  return n;
}

/** Parses a finite number flag, or undefined when absent. */
export function numFlag(flag: string, v: string | undefined, check: (n: number) => boolean = (n) => n >= 0, what = 'a non-negative number'): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${flag} must be ${what}, not ${JSON.stringify(v)}`);
  return n;
}
