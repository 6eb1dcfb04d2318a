// Noising throughput of @fedmm/dp against a baseline measured in the same run.
// Usage: npx tsc -b libs/dp && node bench/dp/noise-bench.mjs [coordinates]
// Baseline: filling the same number of 64-bit words from node:crypto (the randomness floor) and a
// float Box-Muller Gaussian on those bytes (fast but NOT floating-point safe; shown only for scale).
import { randomFillSync } from 'node:crypto';
import { addGaussianNoise, sampleDiscreteGaussianExact } from '../../libs/dp/dist/index.js';

const n = Number(process.argv[2] ?? 10_000_000);
const time = (fn) => {
  const t0 = process.hrtime.bigint();
  const r = fn();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, r };
};

const words = time(() => {
  const buf = new Uint32Array(1 << 16);
  for (let done = 0; done < 2 * n; done += buf.length) randomFillSync(buf);
});
const boxMuller = time(() => {
  const buf = new Uint32Array(1 << 16);
  const out = new Float64Array(n);
  let pos = buf.length;
  for (let i = 0; i < n; i += 1) {
    if (pos + 2 > buf.length) { randomFillSync(buf); pos = 0; }
    const u1 = (buf[pos++] + 1) / 4294967297;
    const u2 = buf[pos++] / 4294967296;
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }
  return out;
});
const input = new Float32Array(n);
const fast = time(() => addGaussianNoise(input, 1.0));
const m = 2000;
const exact = time(() => sampleDiscreteGaussianExact(2 ** 40, m));

const rate = (ms, count) => (count / (ms / 1000) / 1e6).toFixed(2);
console.log(`coordinates: ${n}`);
console.log(`crypto words only (2/coord):       ${words.ms.toFixed(0)} ms  (${rate(words.ms, n)} M coord/s)`);
console.log(`float Box-Muller (unsafe baseline): ${boxMuller.ms.toFixed(0)} ms  (${rate(boxMuller.ms, n)} M coord/s)`);
console.log(`addGaussianNoise fast (grid):       ${fast.ms.toFixed(0)} ms  (${rate(fast.ms, n)} M coord/s)`);
console.log(`exact BigInt sampler, sigma 2^20:   ${exact.ms.toFixed(0)} ms for ${m}  (${(m / (exact.ms / 1000)).toFixed(0)} coord/s)`);
console.log(`ratio fast / Box-Muller: ${(fast.ms / boxMuller.ms).toFixed(2)}x; fast / crypto floor: ${(fast.ms / words.ms).toFixed(2)}x`);
