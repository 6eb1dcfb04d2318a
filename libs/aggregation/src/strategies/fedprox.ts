import { invalidArgument } from '@fedmm/core';
import { FedAvg, type FedAvgOptions } from './fedavg.js';

/** Options of FedProx. */
export interface FedProxOptions extends FedAvgOptions {
  /** Weight of the proximal term (mu / 2) ||w - w_global||^2 the clients add to their loss. */
  readonly mu: number;
}

/**
 * FedProx (Li et al. 2020): server side is FedAvg; the clients receive `proximal_mu` and add the
 * proximal term to their local loss.
 */
export class FedProx extends FedAvg {
  override readonly name = 'fedprox';
  readonly mu: number;

  constructor(options: FedProxOptions) {
    super(options);
    if (!(Number.isFinite(options.mu) && options.mu >= 0)) {
      throw invalidArgument(`FedProx mu must be a finite number >= 0, got ${options.mu}; typical values are 0.001 to 1`);
    }
    this.mu = options.mu;
  }

  override clientConfig(): Readonly<Record<string, number>> {
    return { proximal_mu: this.mu };
  }
}
