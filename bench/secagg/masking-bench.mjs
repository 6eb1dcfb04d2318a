// Where the time of masking goes, per 10M coordinates, with the scalar loops as the baseline
// measured in the same run. Build first, then run:
//   npx tsc -b libs/secagg && node bench/secagg/masking-bench.mjs [--words N] [--reps R]
// Prints best-of-R times (after one untimed warm-up run each) of: keystream generation per cipher (node:crypto), the scalar and SIMD
// addition of a keystream into a vector, the scalar and SIMD fixed-point encoding, and whole
// masking / unmasking calls, with ratios.
import { createCipheriv, createHash, randomFillSync } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { applyMasks, encode, encodeMasked, seededRandom, systemRandom, UnmaskPool } from '@fedmm/secagg';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg('--words', 10_000_000);
const REPS = arg('--reps', 5);
const SLICE = 1 << 16; // bytes per cipher.update, as the library uses
const seed = (label) => new Uint8Array(createHash('sha256').update(label).digest());

/** Best of REPS, the candidates interleaved so that load from other work hits them alike. */
async function bench(cases, reps = REPS) {
  const best = new Map(cases.map(([name]) => [name, Infinity]));
  for (const [, f] of cases) await f(); // warm-up, untimed
  for (let r = 0; r < reps; r++) {
    for (const [name, f] of cases) {
      const t = performance.now();
      await f();
      best.set(name, Math.min(best.get(name), performance.now() - t));
    }
  }
  for (const [name, ms] of best) console.log(`  ${name.padEnd(44)} ${ms.toFixed(1).padStart(8)} ms`);
  return best;
}
const ratio = (a, b) => `${(a / b).toFixed(2)}x`;

console.log(`node ${process.version}, ${N} words, best of ${REPS}\n\nkeystream, 64 KiB slices:`);
const zeros = new Uint8Array(SLICE);
const keystream = (alg, keyBytes) => () => {
  const c = createCipheriv(alg, seed('k').subarray(0, keyBytes), Buffer.alloc(16));
  for (let done = 0; done < 4 * N; done += SLICE) c.update(zeros);
};
// Cheap to run, and the closest call: three times the repetitions.
const ks = await bench([['aes-256-ctr (the mask PRG)', keystream('aes-256-ctr', 32)], ['aes-128-ctr', keystream('aes-128-ctr', 16)], ['chacha20', keystream('chacha20', 32)]], 3 * REPS);

// The scalar baseline: the loops the library ran before its SIMD kernels.
function scalarApply(target, masks) {
  const ciphers = masks.map((m) => createCipheriv('aes-256-ctr', m.seed, Buffer.alloc(16)));
  const big = new Uint8Array(1 << 18);
  for (let done = 0; done < target.length; done += big.length / 4) {
    const words = Math.min(target.length - done, big.length / 4);
    for (let k = 0; k < masks.length; k++) {
      const b = ciphers[k].update(big.subarray(0, 4 * words));
      const s = new Uint32Array(b.buffer, b.byteOffset, words);
      if (masks[k].sign === 1) for (let i = 0; i < words; i++) target[done + i] = target[done + i] + s[i];
      else for (let i = 0; i < words; i++) target[done + i] = target[done + i] - s[i];
    }
  }
}
function scalarEncode(values, clipRange, maxSummands) {
  const RING = 2 ** 32;
  const levels = Math.floor((RING - 1) / maxSummands);
  const scale = levels / (2 * clipRange);
  const shift = clipRange * scale;
  const c = clipRange;
  const out = new Uint32Array(values.length);
  const coins = new Uint32Array(1 << 16);
  for (let start = 0; start < values.length; start += coins.length) {
    randomFillSync(coins);
    const end = Math.min(values.length, start + coins.length);
    for (let i = start; i < end; i++) {
      const x = values[i];
      if (x - x !== 0) throw new Error(`coordinate ${i} is ${x}`);
      const q = (x < -c ? -c : x > c ? c : x) * scale + shift;
      const floor = q >>> 0;
      const v = coins[i - start] < (q - floor) * RING ? floor + 1 : floor;
      out[i] = v > levels ? levels : v;
    }
  }
  return out;
}

const masks = (k) => Array.from({ length: k }, (_, i) => ({ seed: seed(`m/${i}`), sign: i % 2 === 0 ? 1 : -1 }));
const target = new Uint32Array(N);
console.log('\none mask added into a vector (keystream included):');
const one = await bench([['scalar loop', () => scalarApply(target, masks(1))], ['applyMasks (SIMD kernel)', () => applyMasks(target, masks(1))]]);
console.log(`  speed-up ${ratio(one.get('scalar loop'), one.get('applyMasks (SIMD kernel)'))}; keystream alone is ` +
  `${(100 * ks.get('aes-256-ctr (the mask PRG)') / one.get('applyMasks (SIMD kernel)')).toFixed(0)}% of applyMasks`);

const values = new Float32Array(N);
{
  const w = new Int32Array(N);
  seededRandom(seed('values')).fill(new Uint8Array(w.buffer));
  for (let i = 0; i < N; i++) values[i] = w[i] * (0.075 / 2 ** 31); // a third of them beyond the clip range
}
const params = { clipRange: 0.05, maxSummands: 50 };
console.log('\nfixed-point encoding with stochastic rounding (coins from the OS CSPRNG):');
const enc = await bench([['scalar loop', () => scalarEncode(values, 0.05, 50)], ['encode (SIMD kernel)', () => encode(values, params, systemRandom)]]);
console.log(`  speed-up ${ratio(enc.get('scalar loop'), enc.get('encode (SIMD kernel)'))}`);

console.log('\na client of a 50-client SecAgg+ round: encoding plus 13 masks:');
const m13 = masks(13);
const cl = await bench([
  ['scalar encode, then scalar masking', () => scalarApply(scalarEncode(values, 0.05, 50), m13)],
  ['encodeMasked', () => encodeMasked(values, params, m13, systemRandom)],
]);
console.log(`  speed-up ${ratio(cl.get('scalar encode, then scalar masking'), cl.get('encodeMasked'))}`);

const threads = availableParallelism();
const pool = new UnmaskPool({ threads });
const plan = { roundId: 'bench', vectorLength: N, survivors: ['x'], corrections: masks(50), encoding: params };
console.log(`\nthe server removing 50 self masks (threads available: ${threads}):`);
const srv = await bench([
  ['scalar loop', () => scalarApply(target, masks(50))],
  ['applyMasks (SIMD kernel), one thread', () => applyMasks(target, masks(50))],
  [`UnmaskPool, ${threads} threads`, () => pool.unmaskShard({ plan, maskedSum: target, offset: 0 })],
]);
console.log(`  speed-up ${ratio(srv.get('scalar loop'), srv.get('applyMasks (SIMD kernel), one thread'))} on one thread, ` +
  `${ratio(srv.get('scalar loop'), srv.get(`UnmaskPool, ${threads} threads`))} with the pool`);
await pool.close();
