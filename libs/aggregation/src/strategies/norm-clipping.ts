import { failedPrecondition, invalidArgument } from '@fedmm/core';
import type { Compute } from '../compute/compute.js';
import { cpuCompute } from '../compute/cpu-compute.js';
import { clippingScales, combineSquaredNorms } from '../coordination.js';
import type {
  ClippingShardAccumulator, FinishContext, LinearShardAccumulator, LinearStrategy, ShardSpec, Strategy, StrategyOptions,
} from '../types.js';

/** Options of update-norm clipping. */
export interface NormClippingOptions extends StrategyOptions {
  /** Largest L2 norm a client's whole update may have; longer updates are scaled onto it. */
  readonly maxNorm: number;
}

interface HeldChunk {
  readonly offset: number;
  readonly values: Float32Array;
}

interface HeldClient {
  readonly weight: number;
  readonly chunks: HeldChunk[];
  squaredNorm: number;
}

class NormClippingAccumulator implements ClippingShardAccumulator {
  private readonly clients = new Map<string, HeldClient>();
  private done = false;

  constructor(private readonly inner: LinearShardAccumulator, private readonly compute: Compute, private readonly maxNorm: number) {}

  get clientIds(): readonly string[] {
    return [...this.clients.keys()];
  }

  add(clientId: string, elementOffset: number, values: Float32Array, weight: number): void {
    if (this.done) {
      throw failedPrecondition(`chunk from client '${clientId}' arrived after the shard was finished; it belongs to a sealed round and must be dropped`, { clientId });
    }
    let held = this.clients.get(clientId);
    if (held === undefined) {
      held = { weight, chunks: [], squaredNorm: 0 };
      this.clients.set(clientId, held);
    }
    held.chunks.push({ offset: elementOffset, values });
    held.squaredNorm += this.compute.squaredNorm(values);
  }

  partialSquaredNorms(): ReadonlyMap<string, number> {
    const out = new Map<string, number>();
    for (const [id, c] of this.clients) out.set(id, c.squaredNorm);
    return out;
  }

  finishWithScales(scales: ReadonlyMap<string, number>, context: FinishContext = {}): Float32Array {
    if (this.done) throw failedPrecondition('this shard was already finished; create a new accumulator for the next round');
    for (const [id, c] of this.clients) {
      const scale = scales.get(id);
      if (scale === undefined || !(scale >= 0 && Number.isFinite(scale))) {
        throw invalidArgument(
          `no valid clipping scale for client '${id}' (got ${scale}); compute scales for every client from all shards' partialSquaredNorms()`,
          { clientId: id },
        );
      }
      // The inner accumulator validates weights, ranges and completeness as for unclipped updates.
      for (const chunk of c.chunks) this.inner.addScaled(id, chunk.offset, chunk.values, c.weight, scale);
    }
    this.done = true;
    this.clients.clear();
    return this.inner.finish(context);
  }

  finish(context: FinishContext = {}): Float32Array {
    return this.finishWithScales(clippingScales(combineSquaredNorms([this.partialSquaredNorms()]), this.maxNorm), context);
  }
}

/**
 * Update-norm clipping around any linear strategy: each client's update is scaled to L2 norm at
 * most maxNorm over the whole update, then aggregated by the inner strategy. The norms span all
 * shards, so sharded workers run two phases: partialSquaredNorms() per shard, combineSquaredNorms
 * and clippingScales on the coordinator, then finishWithScales(scales) per shard. Until the
 * scales are known the accumulator keeps the clients' chunks by reference: memory O(K x shard).
 */
export class NormClipping implements Strategy {
  readonly name: string;
  readonly holdsAllValues = true;
  readonly coordination = 'norms' as const;
  readonly maxNorm: number;
  private readonly compute: Compute;

  constructor(readonly inner: LinearStrategy, options: NormClippingOptions) {
    if (!(Number.isFinite(options.maxNorm) && options.maxNorm > 0)) {
      throw invalidArgument(`clipping maxNorm must be a positive number, got ${options.maxNorm}`);
    }
    this.maxNorm = options.maxNorm;
    this.compute = options.compute ?? cpuCompute;
    this.name = `clipped-${inner.name}`;
  }

  clientConfig(): Readonly<Record<string, number>> {
    return this.inner.clientConfig();
  }

  /** Per-client scale factors from each client's global norm. */
  scales(norms: ReadonlyMap<string, number>): Map<string, number> {
    return clippingScales(norms, this.maxNorm);
  }

  createShardAccumulator(spec: ShardSpec): ClippingShardAccumulator {
    return new NormClippingAccumulator(this.inner.createShardAccumulator(spec), this.compute, this.maxNorm);
  }
}
