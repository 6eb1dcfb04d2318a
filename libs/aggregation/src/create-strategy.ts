import { invalidArgument } from '@fedmm/core';
import type { Compute } from './compute/compute.js';
import { FedAdagrad } from './strategies/fedadagrad.js';
import { FedAdam } from './strategies/fedadam.js';
import { FedAvg } from './strategies/fedavg.js';
import type { FedOptOptions } from './strategies/fedopt.js';
import { FedProx } from './strategies/fedprox.js';
import { FedYogi } from './strategies/fedyogi.js';
import { Krum } from './strategies/krum.js';
import { CoordinateMedian } from './strategies/median.js';
import { MultiKrum } from './strategies/multi-krum.js';
import { NormClipping } from './strategies/norm-clipping.js';
import { TrimmedMean } from './strategies/trimmed-mean.js';
import type { LinearStrategy, Strategy } from './types.js';

/** A strategy as a task configures it (e.g. from `fedmm task create`). */
export type StrategyConfig =
  | { readonly name: 'fedavg'; readonly clipNorm?: number }
  | { readonly name: 'fedprox'; readonly mu: number; readonly clipNorm?: number }
  | ({ readonly name: 'fedadam' | 'fedyogi' | 'fedadagrad'; readonly clipNorm?: number } & Omit<FedOptOptions, 'compute'>)
  | { readonly name: 'median' }
  | { readonly name: 'trimmed-mean'; readonly beta: number }
  | { readonly name: 'krum'; readonly byzantine: number }
  | { readonly name: 'multi-krum'; readonly byzantine: number; readonly keep: number };

/** Builds the strategy a task names; `clipNorm` wraps a linear strategy in update-norm clipping. */
export function createStrategy(config: StrategyConfig, compute?: Compute): Strategy {
  const base = compute === undefined ? {} : { compute };
  const clip = (s: LinearStrategy, maxNorm: number | undefined): Strategy =>
    maxNorm === undefined ? s : new NormClipping(s, { ...base, maxNorm });
  switch (config.name) {
    case 'fedavg':
      return clip(new FedAvg(base), config.clipNorm);
    case 'fedprox':
      return clip(new FedProx({ ...base, mu: config.mu }), config.clipNorm);
    case 'fedadam':
    case 'fedyogi':
    case 'fedadagrad': {
      const { name, clipNorm, ...opt } = config;
      const Ctor = name === 'fedadam' ? FedAdam : name === 'fedyogi' ? FedYogi : FedAdagrad;
      return clip(new Ctor({ ...opt, ...base }), clipNorm);
    }
    case 'median':
      return new CoordinateMedian(base);
    case 'trimmed-mean':
      return new TrimmedMean({ ...base, beta: config.beta });
    case 'krum':
      return new Krum({ ...base, byzantine: config.byzantine });
    case 'multi-krum':
      return new MultiKrum({ ...base, byzantine: config.byzantine, keep: config.keep });
    default:
      throw invalidArgument(
        `unknown strategy '${(config as { name?: unknown }).name}'; use fedavg, fedprox, fedadam, fedyogi, fedadagrad, median, trimmed-mean, krum or multi-krum`,
      );
  }
}
