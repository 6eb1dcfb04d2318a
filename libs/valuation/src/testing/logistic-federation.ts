import { type Rng, seededRng } from '../rng.js';
import type { ClientUpdate, EvaluateFn } from '../subset-model-utility.js';

/** How one synthetic company's data is made. */
export interface SyntheticCompany {
  readonly id: string;
  readonly samples: number;
  /** Labels drawn at random instead of from the true model. */
  readonly randomLabels?: boolean;
  /** Fraction of labels replaced by coin flips (0 = clean, 1 = the same as randomLabels). */
  readonly labelNoise?: number;
  /** Train on exactly the data of this other company (same samples, same update). */
  readonly sameDataAs?: string;
  /** Send an all-zero update instead of training. */
  readonly zeroUpdate?: boolean;
}

export interface LogisticFederationOptions {
  readonly companies: readonly SyntheticCompany[];
  readonly features?: number;
  readonly validationSamples?: number;
  readonly localEpochs?: number;
  readonly learningRate?: number;
  readonly seed?: number | string;
}

/** A seeded federation of logistic-regression companies: one round of local training, ready to value. */
export interface LogisticFederation {
  readonly previous: Float32Array;
  readonly updates: readonly ClientUpdate[];
  /** Negative mean log-loss on the platform's validation set (higher is better, smooth). */
  readonly negLogLoss: EvaluateFn;
  /** Accuracy on the platform's validation set. */
  readonly accuracy: EvaluateFn;
  /** Evaluations performed through either metric. */
  evaluations(): number;
}

interface Dataset {
  readonly x: Float64Array;
  readonly y: Uint8Array;
  readonly n: number;
}

/** Builds the federation: shared true model, per-company data and local full-batch gradient descent. */
export function logisticFederation(options: LogisticFederationOptions): LogisticFederation {
  const d = options.features ?? 8;
  const rng = seededRng(options.seed ?? 1);
  const truth = Float64Array.from({ length: d + 1 }, () => gaussian(rng) * 1.5);
  const dim = d + 1; // weights then bias
  const draw = (n: number, labelNoise: number): Dataset => {
    const x = new Float64Array(n * d);
    const y = new Uint8Array(n);
    for (let s = 0; s < n; s++) {
      let z = truth[d] ?? 0;
      for (let j = 0; j < d; j++) {
        const v = gaussian(rng);
        x[s * d + j] = v;
        z += (truth[j] ?? 0) * v;
      }
      y[s] = rng.next() < labelNoise ? (rng.next() < 0.5 ? 1 : 0) : rng.next() < sigmoid(z) ? 1 : 0;
    }
    return { x, y, n };
  };
  const validation = draw(options.validationSamples ?? 1000, 0);
  const previous = new Float32Array(dim);
  const epochs = options.localEpochs ?? 10;
  const lr = options.learningRate ?? 0.5;
  const data = new Map<string, Dataset>();
  const updates: ClientUpdate[] = [];
  for (const c of options.companies) {
    const ds = c.sameDataAs !== undefined ? data.get(c.sameDataAs) : draw(c.samples, c.randomLabels === true ? 1 : (c.labelNoise ?? 0));
    if (!ds) throw new Error(`company ${c.id} copies ${c.sameDataAs ?? ''}, which must be listed before it`);
    data.set(c.id, ds);
    const update = new Float32Array(dim);
    if (c.zeroUpdate !== true) {
      const w = Float64Array.from(previous);
      for (let e = 0; e < epochs; e++) {
        const grad = new Float64Array(dim);
        for (let s = 0; s < ds.n; s++) {
          const err = sigmoid(logit(w, ds.x, s, d)) - (ds.y[s] ?? 0);
          for (let j = 0; j < d; j++) grad[j] = (grad[j] ?? 0) + err * (ds.x[s * d + j] ?? 0);
          grad[d] = (grad[d] ?? 0) + err;
        }
        for (let j = 0; j < dim; j++) w[j] = (w[j] ?? 0) - (lr * (grad[j] ?? 0)) / ds.n;
      }
      for (let j = 0; j < dim; j++) update[j] = (w[j] ?? 0) - (previous[j] ?? 0);
    }
    updates.push({ client: c.id, update, weight: ds.n });
  }
  let evaluations = 0;
  const negLogLoss: EvaluateFn = (params) => {
    evaluations++;
    let loss = 0;
    for (let s = 0; s < validation.n; s++) {
      const p = Math.min(1 - 1e-7, Math.max(1e-7, sigmoid(logit(params, validation.x, s, d))));
      loss -= validation.y[s] === 1 ? Math.log(p) : Math.log(1 - p);
    }
    return Promise.resolve(-loss / validation.n);
  };
  const accuracy: EvaluateFn = (params) => {
    evaluations++;
    let correct = 0;
    for (let s = 0; s < validation.n; s++) {
      if ((logit(params, validation.x, s, d) > 0 ? 1 : 0) === validation.y[s]) correct++;
    }
    return Promise.resolve(correct / validation.n);
  };
  return { previous, updates, negLogLoss, accuracy, evaluations: () => evaluations };
}

function logit(w: ArrayLike<number>, x: Float64Array, s: number, d: number): number {
  let z = w[d] ?? 0;
  for (let j = 0; j < d; j++) z += (w[j] ?? 0) * (x[s * d + j] ?? 0);
  return z;
}

function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

function gaussian(rng: Rng): number {
  const u = Math.max(rng.next(), Number.MIN_VALUE);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}
