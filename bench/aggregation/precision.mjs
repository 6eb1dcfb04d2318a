// Error of accumulating K float32 updates (example-weighted mean) in float32, Kahan-compensated
// float32 and float64, against an exactly rounded reference (Neumaier-compensated float64).
import { cpuCompute } from '@fedmm/aggregation';

const N = Number(process.env.PRECISION_N ?? 200_000);
const f = Math.fround;

function lcg(seed) {
  let a = seed >>> 0;
  return () => ((a = (Math.imul(a, 1664525) + 1013904223) >>> 0) / 4294967296);
}

function measure(k, seed) {
  const rand = lcg(seed);
  // Updates of mixed sign and magnitude, weights 1..1000 examples: cancellation is the hard case.
  const rows = Array.from({ length: k }, () => Float32Array.from({ length: N }, () => (rand() - 0.5) * 10 ** (rand() * 4 - 3)));
  const w = Array.from({ length: k }, () => 1 + Math.floor(rand() * 1000));
  const W = w.reduce((a, b) => a + b, 0);
  const worst = { f32: 0, kahan: 0, f64: 0, kernel: 0 };
  const scaled = { f32: 0, kahan: 0, f64: 0, kernel: 0 };
  // The shipped kernels, as the accumulator runs them: fused groups of up to 8 rows, then one scale.
  const acc = new Float64Array(N);
  for (let j = 0; j < k; j += 8) cpuCompute.weightedSumInto(acc, 0, rows.slice(j, j + 8), w.slice(j, j + 8));
  const kernelMean = new Float32Array(N);
  cpuCompute.scaleInto(kernelMean, acc, 0, N, 1 / W);
  for (let i = 0; i < N; i++) {
    let s32 = 0, k32 = 0, c32 = 0, s64 = 0, sRef = 0, cRef = 0, abs = 0;
    for (let j = 0; j < k; j++) {
      const x = rows[j][i];
      s32 = f(s32 + f(w[j] * x));
      const y = f(f(w[j] * x) - c32);
      const t = f(k32 + y);
      c32 = f(f(t - k32) - y);
      k32 = t;
      s64 += w[j] * x;
      abs += w[j] * Math.abs(x);
      const term = w[j] * x; // exact: an int below 2^10 times a float32 fits in float64
      const t2 = sRef + term;
      cRef += Math.abs(sRef) >= Math.abs(term) ? sRef - t2 + term : term - t2 + sRef;
      sRef = t2;
    }
    const ref = (sRef + cRef) / W;
    const ulp = Math.max(Math.abs(f(ref)) * 2 ** -23, 2 ** -149);
    const err = (v) => Math.abs(f(v) - ref) / ulp;
    const rel = (v) => Math.abs(f(v) - ref) / (abs / W);
    worst.f32 = Math.max(worst.f32, err(f(s32 / W)));
    worst.kahan = Math.max(worst.kahan, err(f(k32 / W)));
    worst.f64 = Math.max(worst.f64, err(s64 / W));
    scaled.f32 = Math.max(scaled.f32, rel(f(s32 / W)));
    scaled.kahan = Math.max(scaled.kahan, rel(f(k32 / W)));
    scaled.f64 = Math.max(scaled.f64, rel(s64 / W));
    worst.kernel = Math.max(worst.kernel, err(kernelMean[i]));
    scaled.kernel = Math.max(scaled.kernel, rel(kernelMean[i]));
  }
  return { worst, scaled };
}

console.log(`\n== Accumulator precision over ${N} coordinates: worst error in float32 ulps of the mean, and`);
console.log('   worst error relative to sum(w|x|)/sum(w) (the scale of the terms, which cancellation does not shrink)');
console.log(`   (fedmm: cpuCompute.weightedSumInto + scaleInto, kernels '${cpuCompute.name}')`);
console.log('K     ulps: float32  Kahan f32  float64    fedmm      relative: float32  Kahan f32  float64    fedmm');
const e = (x) => x.toExponential(2).padEnd(11);
for (const k of [2, 4, 8, 16, 32, 64]) {
  const { worst, scaled } = measure(k, k);
  console.log(`${String(k).padEnd(12)}${e(worst.f32)}${e(worst.kahan)}${e(worst.f64)}${e(worst.kernel)}          ${e(scaled.f32)}${e(scaled.kahan)}${e(scaled.f64)}${e(scaled.kernel)}`);
}
