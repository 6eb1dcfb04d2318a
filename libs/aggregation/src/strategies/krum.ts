import { invalidArgument } from '@fedmm/core';
import type { Compute } from '../compute/compute.js';
import { cpuCompute } from '../compute/cpu-compute.js';
import { type GlobalDistances, selectKrum, sumPartialDistances } from '../coordination.js';
import { RowStore } from '../row-store.js';
import { applyStep, checkPrevious } from '../server-step.js';
import type {
  FinishContext, PartialDistances, SelectionShardAccumulator, ShardSpec, Strategy, StrategyOptions,
} from '../types.js';
import { WeightedMeanAccumulator } from '../weighted-mean.js';

/** Options of Krum. */
export interface KrumOptions extends StrategyOptions {
  /** Number of Byzantine clients tolerated (f). */
  readonly byzantine: number;
  /** Clients averaged after selection: 1 is Krum, more is Multi-Krum. */
  readonly keep?: number;
}

class KrumAccumulator implements SelectionShardAccumulator {
  private readonly store: RowStore;
  private distances: PartialDistances | undefined;

  constructor(spec: ShardSpec, private readonly compute: Compute, private readonly select: (d: PartialDistances) => string[]) {
    this.store = new RowStore(spec);
  }

  get clientIds(): readonly string[] {
    return this.store.participation.clientIds;
  }

  add(clientId: string, elementOffset: number, values: Float32Array, weight: number): void {
    this.store.add(clientId, elementOffset, values, weight);
  }

  partialDistances(): PartialDistances {
    if (this.distances === undefined) {
      this.store.seal();
      const rows = this.store.allRows();
      const k = rows.length;
      const squared = new Float64Array(k * k);
      this.compute.pairwiseSquaredDistances(rows, 0, this.store.shard.shardLength, squared);
      const squaredNorms = Float64Array.from(rows, (r) => this.compute.squaredNorm(r));
      this.distances = { clientIds: this.store.participation.clientIds, squared, squaredNorms };
    }
    return this.distances;
  }

  finishWithSelection(selected: readonly string[], context: FinishContext = {}): Float32Array {
    const shard = this.store.shard;
    checkPrevious(context.previous, shard.shardLength);
    this.store.seal();
    if (selected.length === 0) throw invalidArgument('Krum selection is empty; select at least one client');
    const mean = new WeightedMeanAccumulator(shard, { compute: this.compute });
    const rows = this.store.allRows();
    // A selected client absent here lacks every tensor of this shard: it contributes nowhere.
    for (const id of new Set(selected)) {
      const entry = this.store.participation.get(id);
      if (entry === undefined) continue;
      const row = rows[entry.index]!;
      shard.segments.forEach((seg, s) => {
        if (this.store.participation.holds(entry, s)) {
          mean.addScaled(id, seg.start, row.subarray(seg.start, seg.start + seg.length), entry.weight, 1);
        }
      });
    }
    const { mean: update } = mean.finishMean();
    context.perturb?.(update, shard.segments);
    return applyStep(update, context.previous);
  }

  finish(context: FinishContext = {}): Float32Array {
    return this.finishWithSelection(this.select(this.partialDistances()), context);
  }
}

/**
 * Krum and Multi-Krum (Blanchard et al. 2017) over the whole update. Sharded workers run two
 * phases: each shard's partialDistances(), summed by the coordinator (sumPartialDistances) and
 * fed to selectKrum, then finishWithSelection(selected) on every shard; finish() does both for
 * a single shard. The selected clients are averaged by examples, as Flower does. Holds all K
 * clients' values of the shard: memory O(K x shard), compute O(K^2 x shard).
 */
export class Krum implements Strategy {
  readonly name: string = 'krum';
  readonly holdsAllValues = true;
  readonly coordination = 'distances' as const;
  readonly byzantine: number;
  readonly keep: number;
  private readonly compute: Compute;

  constructor(options: KrumOptions) {
    this.byzantine = options.byzantine;
    this.keep = options.keep ?? 1;
    if (!Number.isInteger(this.byzantine) || this.byzantine < 0) {
      throw invalidArgument(`Krum byzantine must be an integer >= 0, got ${this.byzantine}`);
    }
    if (!Number.isInteger(this.keep) || this.keep < 1) throw invalidArgument(`Krum keep must be an integer >= 1, got ${this.keep}`);
    this.compute = options.compute ?? cpuCompute;
  }

  clientConfig(): Readonly<Record<string, number>> {
    return {};
  }

  /** The clients to average, from the distances summed over all shards. */
  select(distances: GlobalDistances): string[] {
    return selectKrum(distances, { byzantine: this.byzantine, keep: this.keep });
  }

  createShardAccumulator(spec: ShardSpec): SelectionShardAccumulator {
    return new KrumAccumulator(spec, this.compute, (d) => this.select(sumPartialDistances([d])));
  }
}
