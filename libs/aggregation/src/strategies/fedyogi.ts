import { FedOpt, type FedOptOptions, type MomentUpdate } from './fedopt.js';

const yogi: MomentUpdate = (delta, m, v, step, start, end, p) => {
  const { beta1, beta2, tau, eta } = p;
  for (let i = start; i < end; i++) {
    const d = delta[i]!;
    const d2 = d * d;
    const mi = beta1 * m[i]! + (1 - beta1) * d;
    const prev = v[i]!;
    const vi = prev - (1 - beta2) * d2 * Math.sign(prev - d2);
    m[i] = mi;
    v[i] = vi;
    step[i] = (eta * mi) / (Math.sqrt(vi) + tau);
  }
};

/** FedYogi (Reddi et al. 2021): Yogi's additive second-moment update on the server. */
export class FedYogi extends FedOpt {
  readonly name = 'fedyogi';
  readonly algorithm = 'fedyogi' as const;

  constructor(options: FedOptOptions = {}) {
    super(options, { eta: 1e-2, etaL: 0.0316, beta1: 0.9, beta2: 0.99, tau: 1e-3 }, yogi);
  }
}
