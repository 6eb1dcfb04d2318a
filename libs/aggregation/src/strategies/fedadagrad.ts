import { FedOpt, type FedOptOptions, type MomentUpdate } from './fedopt.js';

const adagrad: MomentUpdate = (delta, m, v, step, start, end, p) => {
  const { beta1, tau, eta } = p;
  for (let i = start; i < end; i++) {
    const d = delta[i]!;
    const mi = beta1 * m[i]! + (1 - beta1) * d;
    const vi = v[i]! + d * d;
    m[i] = mi;
    v[i] = vi;
    step[i] = (eta * mi) / (Math.sqrt(vi) + tau);
  }
};

/** FedAdagrad (Reddi et al. 2021): v accumulates squared pseudo-gradients; beta1 defaults to 0. */
export class FedAdagrad extends FedOpt {
  readonly name = 'fedadagrad';
  readonly algorithm = 'fedadagrad' as const;

  constructor(options: FedOptOptions = {}) {
    super(options, { eta: 1e-1, etaL: 1e-1, beta1: 0, beta2: 0, tau: 1e-9 }, adagrad);
  }
}
