import { Rng } from '../prng.js';
import type { FeatureMatrix } from './features.js';

export interface SoftmaxOptions {
  /** L2 penalty on the weights. */
  readonly l2?: number;
  readonly iterations?: number;
  readonly learningRate?: number;
}

/** Standardisation learnt on training rows; text stays as is (sparse, already L2-normalised). */
interface Scaler {
  readonly mean: Float64Array;
  readonly scale: Float64Array;
}

function fitScaler(x: FeatureMatrix, rows: readonly number[]): Scaler {
  const mean = new Float64Array(x.dims);
  const scale = new Float64Array(x.dims).fill(1);
  x.blocks.forEach((b, bi) => {
    if (b.name === 'text') return;
    const used = rows.filter((r) => x.present[r * 3 + bi] === 1);
    if (used.length === 0) return;
    for (let j = b.start; j < b.end; j++) {
      let m = 0;
      for (const r of used) m += x.data[r * x.dims + j]!;
      m /= used.length;
      let v = 0;
      for (const r of used) v += (x.data[r * x.dims + j]! - m) ** 2;
      mean[j] = m;
      scale[j] = 1 / (Math.sqrt(v / used.length) + 1e-6);
    }
  });
  return { mean, scale };
}

/** Design row: scaled features (a missing modality imputed as the mean, i.e. 0), presence flags, bias. */
function designRow(x: FeatureMatrix, s: Scaler, r: number, out: Float64Array): void {
  out.fill(0);
  x.blocks.forEach((b, bi) => {
    if (x.present[r * 3 + bi] !== 1) return;
    for (let j = b.start; j < b.end; j++) out[j] = (x.data[r * x.dims + j]! - s.mean[j]!) * s.scale[j]!;
    out[x.dims + bi] = 1;
  });
  out[x.dims + 3] = 1;
}

/** Multinomial logistic regression trained by full-batch Adam: small, deterministic, good enough to rank label errors. */
export class SoftmaxRegression {
  private constructor(
    private readonly scaler: Scaler,
    private readonly weights: Float64Array,
    private readonly dims: number,
    readonly classes: number,
  ) {}

  static fit(x: FeatureMatrix, rows: readonly number[], labels: ArrayLike<number>, classes: number, options: SoftmaxOptions = {}): SoftmaxRegression {
    const l2 = options.l2 ?? 0.1;
    const iterations = options.iterations ?? 100;
    const lr = options.learningRate ?? 0.05;
    const scaler = fitScaler(x, rows);
    const d = x.dims + 4;
    const n = rows.length;
    // Rows are stored sparse: the hashed text block is mostly zeros and a missing modality is all zeros.
    const rowStart = new Int32Array(n + 1);
    const idx: number[] = [], val: number[] = [];
    const row = new Float64Array(d);
    rows.forEach((r, i) => {
      designRow(x, scaler, r, row);
      for (let j = 0; j < d; j++) {
        if (row[j] !== 0) {
          idx.push(j);
          val.push(row[j]!);
        }
      }
      rowStart[i + 1] = idx.length;
    });
    const cols = Int32Array.from(idx), vals = Float64Array.from(val);
    const w = new Float64Array(d * classes);
    const m = new Float64Array(w.length), v = new Float64Array(w.length), grad = new Float64Array(w.length);
    const z = new Float64Array(classes);
    const b1 = 0.9, b2 = 0.999;
    for (let it = 1; it <= iterations; it++) {
      grad.fill(0);
      for (let i = 0; i < n; i++) {
        z.fill(0);
        for (let q = rowStart[i]!; q < rowStart[i + 1]!; q++) {
          const base = cols[q]! * classes, xv = vals[q]!;
          for (let k = 0; k < classes; k++) z[k]! += xv * w[base + k]!;
        }
        let max = -Infinity, sum = 0;
        for (let k = 0; k < classes; k++) max = Math.max(max, z[k]!);
        for (let k = 0; k < classes; k++) sum += z[k] = Math.exp(z[k]! - max);
        for (let k = 0; k < classes; k++) z[k] = z[k]! / sum / n;
        z[labels[rows[i]!]!]! -= 1 / n;
        for (let q = rowStart[i]!; q < rowStart[i + 1]!; q++) {
          const base = cols[q]! * classes, xv = vals[q]!;
          for (let k = 0; k < classes; k++) grad[base + k]! += xv * z[k]!;
        }
      }
      const c1 = 1 - b1 ** it, c2 = 1 - b2 ** it;
      for (let q = 0; q < w.length; q++) {
        const g = grad[q]! + l2 * w[q]!;
        m[q] = b1 * m[q]! + (1 - b1) * g;
        v[q] = b2 * v[q]! + (1 - b2) * g * g;
        w[q] = w[q]! - (lr * (m[q]! / c1)) / (Math.sqrt(v[q]! / c2) + 1e-8);
      }
    }
    return new SoftmaxRegression(scaler, w, d, classes);
  }

  /** Class probabilities for the given rows of a feature matrix. */
  predictProba(x: FeatureMatrix, rows: readonly number[]): Float32Array[] {
    const row = new Float64Array(this.dims);
    const p = new Float64Array(this.classes);
    return rows.map((r) => {
      designRow(x, this.scaler, r, row);
      softmaxInto(row, this.weights, this.dims, this.classes, p);
      return Float32Array.from(p);
    });
  }
}

function softmaxInto(x: Float64Array, w: Float64Array, d: number, k: number, out: Float64Array): void {
  out.fill(0);
  for (let j = 0; j < d; j++) {
    const xj = x[j]!;
    if (xj === 0) continue;
    for (let c = 0; c < k; c++) out[c]! += xj * w[j * k + c]!;
  }
  let max = -Infinity;
  for (let c = 0; c < k; c++) max = Math.max(max, out[c]!);
  let sum = 0;
  for (let c = 0; c < k; c++) {
    out[c] = Math.exp(out[c]! - max);
    sum += out[c]!;
  }
  for (let c = 0; c < k; c++) out[c] = out[c]! / sum;
}

/** Stratified fold assignment: each class spread evenly over the folds, seeded. */
export function stratifiedFolds(labels: ArrayLike<number>, folds: number, seed: string | number): Int32Array {
  const rng = new Rng(`folds/${seed}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const list = byClass.get(labels[i]!) ?? [];
    list.push(i);
    byClass.set(labels[i]!, list);
  }
  const out = new Int32Array(labels.length);
  let next = 0;
  for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
    for (const i of rng.shuffled(byClass.get(c)!)) out[i] = next++ % folds;
  }
  return out;
}

/** Out-of-sample class probabilities for every row by K-fold cross-validation. */
export function crossValidatedProbabilities(
  x: FeatureMatrix,
  labels: ArrayLike<number>,
  classes: number,
  folds: number,
  seed: string | number,
  options: SoftmaxOptions = {},
  onFold?: (done: number, total: number) => void,
): Float32Array[] {
  const k = Math.max(2, Math.min(folds, x.rows));
  const fold = stratifiedFolds(labels, k, seed);
  const out: Float32Array[] = new Array(x.rows);
  for (let f = 0; f < k; f++) {
    const train: number[] = [], held: number[] = [];
    for (let i = 0; i < x.rows; i++) (fold[i] === f ? held : train).push(i);
    if (held.length === 0) continue;
    const model = SoftmaxRegression.fit(x, train, labels, classes, options);
    model.predictProba(x, held).forEach((p, j) => (out[held[j]!] = p));
    onFold?.(f + 1, k);
  }
  return out;
}
