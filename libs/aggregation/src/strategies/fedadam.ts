import { FedOpt, type FedOptOptions, type MomentUpdate } from './fedopt.js';

const adam: MomentUpdate = (delta, m, v, step, start, end, p, t) => {
  const { beta1, beta2, tau } = p;
  // Bias-corrected step size as in Kingma & Ba; t counts this shard's server steps from 1.
  const etaNorm = (p.eta * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t);
  for (let i = start; i < end; i++) {
    const d = delta[i]!;
    const mi = beta1 * m[i]! + (1 - beta1) * d;
    const vi = beta2 * v[i]! + (1 - beta2) * d * d;
    m[i] = mi;
    v[i] = vi;
    step[i] = (etaNorm * mi) / (Math.sqrt(vi) + tau);
  }
};

/** FedAdam (Reddi et al. 2021): Adam on the server over the mean client update. */
export class FedAdam extends FedOpt {
  readonly name = 'fedadam';
  readonly algorithm = 'fedadam' as const;

  constructor(options: FedOptOptions = {}) {
    super(options, { eta: 1e-1, etaL: 1e-1, beta1: 0.9, beta2: 0.99, tau: 1e-9 }, adam);
  }
}
