import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encode, encodeScalar, encodingConstants, fixedPointScale } from './fixed-point.js';
import { applyMasks, encodeMasked, maskRange } from './prg.js';
import { seededRandom } from './random.js';
import { addInto, subtractFrom } from './ring.js';
import { BLOCK_WORDS, createRingKernels, type RingKernels } from './ring-kernels.js';
import { seedOf } from './test-support.js';

const maybeKernels = createRingKernels();
assert.ok(maybeKernels !== undefined, 'node 20 has WebAssembly SIMD: the kernels must instantiate');
const kernels: RingKernels = maybeKernels;

/** Reproducible random words, with the extremes planted so that sums and differences wrap. */
function words(label: string, n: number): Uint32Array {
  const out = new Uint32Array(n);
  seededRandom(seedOf(label)).fill(new Uint8Array(out.buffer));
  const extremes = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
  for (let i = 0; i < Math.min(n, extremes.length); i++) out[i] = extremes[i]!;
  return out;
}

const COUNTS = [0, 1, 2, 3, 4, 5, 7, 15, 16, 17, 1023, BLOCK_WORDS - 1, BLOCK_WORDS];

test('the add and subtract kernels match the scalar ring arithmetic mod 2^32', () => {
  for (const n of COUNTS) {
    for (const [op, ref] of [['add', (a: number, b: number) => (a + b) % 2 ** 32], ['subtract', (a: number, b: number) => (a - b + 2 ** 32) % 2 ** 32]] as const) {
      const a = words(`k/${op}/a/${n}`, n);
      const b = words(`k/${op}/b/${n}`, n).reverse();
      kernels.target.set(a);
      kernels.stream.set(new Uint8Array(b.buffer));
      kernels[op](n);
      for (let i = 0; i < n; i++) {
        if (kernels.target[i] !== ref(a[i]!, b[i]!)) assert.fail(`${op} of ${n} words: word ${i} is ${kernels.target[i]}, expected ${ref(a[i]!, b[i]!)}`);
      }
    }
  }
});

/** Floats that exercise the clip, zero, sub-step values and exact half steps. */
function floats(label: string, n: number, clip: number): Float32Array {
  const w = words(label, n);
  const out = new Float32Array(n);
  const step = 1 / fixedPointScale({ clipRange: clip, maxSummands: 50 });
  const special = [0, -0, clip, -clip, Math.fround(clip * 1.0000001), -3 * clip, 1e-30, -1e-30, step / 2, -step / 2, 0.1 * clip + step / 2];
  for (let i = 0; i < n; i++) out[i] = i < special.length ? special[i]! : ((w[i]! / 2 ** 32) * 2 - 1) * 1.5 * clip;
  return out;
}

test('the encode kernel gives the scalar encoding bit for bit, coins 0 and 2^32 - 1 included', () => {
  for (const maxSummands of [1, 3, 50, 65536]) {
    for (const clip of [0.05, 1, 1000]) {
      const k = encodingConstants({ clipRange: clip, maxSummands });
      for (const n of COUNTS) {
        const values = floats(`k/enc/${maxSummands}/${clip}/${n}`, n, clip);
        const coins = words(`k/coins/${n}`, n);
        const expected = new Uint32Array(n);
        encodeScalar(values, 0, n, coins, 0, expected, 0, k);
        kernels.values.set(values);
        kernels.coinWords.set(coins);
        assert.equal(kernels.encode(n, k.clipRange, k.scale, k.shift, k.levels), true);
        const whole = n & ~3;
        for (let i = 0; i < whole; i++) {
          if (kernels.target[i] !== expected[i]) {
            assert.fail(`n ${n}, clip ${clip}, summands ${maxSummands}: coordinate ${i} (${values[i]}, coin ${coins[i]}) encodes to ${kernels.target[i]}, expected ${expected[i]}`);
          }
        }
      }
    }
  }
});

test('the encode kernel reports a non-finite value wherever it sits in a vector', () => {
  const k = encodingConstants({ clipRange: 0.5, maxSummands: 10 });
  for (const bad of [NaN, Infinity, -Infinity]) {
    for (const at of [0, 1, 2, 3, 6, 63]) {
      kernels.values.fill(0.25, 0, 64);
      kernels.values[at] = bad;
      assert.equal(kernels.encode(64, k.clipRange, k.scale, k.shift, k.levels), false, `${bad} at ${at}`);
    }
  }
  kernels.values.fill(0.25, 0, 64);
  assert.equal(kernels.encode(64, k.clipRange, k.scale, k.shift, k.levels), true);
});

test('encode refuses a non-finite coordinate in the SIMD part and in the tail, naming it', () => {
  const params = { clipRange: 0.5, maxSummands: 10 };
  for (const at of [5, BLOCK_WORDS + 2, 2 * BLOCK_WORDS + 5]) {
    const v = new Float32Array(2 * BLOCK_WORDS + 6);
    v[at] = NaN;
    assert.throws(() => encode(v, params), new RegExp(`coordinate ${at} is NaN`));
  }
});

test('addInto and subtractFrom match the scalar loop at any offset and length', () => {
  for (const n of [0, 1, 3, 255, 256, 257, BLOCK_WORDS + 3, 3 * BLOCK_WORDS + 1]) {
    for (const at of [0, 1, 7]) {
      const acc = words(`ring/acc/${n}`, n + at + 2);
      const v = words(`ring/v/${n}`, n).reverse();
      const sum = acc.slice();
      addInto(sum, v, at);
      const diff = sum.slice();
      subtractFrom(diff, v, at);
      assert.deepEqual(diff, acc);
      for (let i = 0; i < acc.length; i++) {
        const expected = i >= at && i < at + n ? (acc[i]! + v[i - at]!) % 2 ** 32 : acc[i]!;
        if (sum[i] !== expected) assert.fail(`n ${n}, at ${at}: word ${i} is ${sum[i]}, expected ${expected}`);
      }
    }
  }
});

test('applyMasks equals adding each stream word by word, at offsets inside an AES block', () => {
  const masks = [{ seed: seedOf('am/0'), sign: 1 as const }, { seed: seedOf('am/1'), sign: -1 as const }, { seed: seedOf('am/2'), sign: 1 as const }];
  for (const [offset, n] of [[0, 5], [3, BLOCK_WORDS + 1], [BLOCK_WORDS - 1, 2 * BLOCK_WORDS + 3], [1_000_002, 999]] as const) {
    const base = words(`am/t/${n}`, n);
    const target = base.slice();
    applyMasks(target, masks, offset);
    const streams = masks.map((m) => maskRange(m.seed, offset, n));
    for (let i = 0; i < n; i++) {
      let e = base[i]!;
      for (let k = 0; k < masks.length; k++) e = (e + masks[k]!.sign * streams[k]![i]! + 2 ** 32) % 2 ** 32;
      if (target[i] !== e) assert.fail(`offset ${offset}, n ${n}: word ${i} is ${target[i]}, expected ${e}`);
    }
  }
});

test('encodeMasked equals encode then applyMasks, drawing the same coins', () => {
  const params = { clipRange: 0.05, maxSummands: 13 };
  const masks = [{ seed: seedOf('em/0'), sign: 1 as const }, { seed: seedOf('em/1'), sign: -1 as const }];
  for (const n of [1, 6, BLOCK_WORDS, 2 * BLOCK_WORDS + 7]) {
    const values = floats(`em/${n}`, n, params.clipRange);
    const expected = encode(values, params, seededRandom(seedOf('em/coins')));
    applyMasks(expected, masks);
    assert.deepEqual(encodeMasked(values, params, masks, seededRandom(seedOf('em/coins'))), expected, `n ${n}`);
  }
});

test('without WebAssembly the scalar paths give the same masked input and sums', () => {
  // --jitless turns WebAssembly off, so the child takes every scalar fallback.
  const prg = fileURLToPath(new URL('./prg.js', import.meta.url));
  const ring = fileURLToPath(new URL('./ring.js', import.meta.url));
  const random = fileURLToPath(new URL('./random.js', import.meta.url));
  const kernelsPath = fileURLToPath(new URL('./ring-kernels.js', import.meta.url));
  const n = 2 * BLOCK_WORDS + 5;
  const script = `
    import { encodeMasked } from ${JSON.stringify(prg)};
    import { addInto } from ${JSON.stringify(ring)};
    import { seededRandom } from ${JSON.stringify(random)};
    import { ringKernels } from ${JSON.stringify(kernelsPath)};
    if (ringKernels() !== undefined) throw new Error('expected no WebAssembly');
    const seed = (b) => new Uint8Array(32).fill(b);
    const values = new Float32Array(${n}).map((_, i) => Math.sin(i) * 0.08);
    const masked = encodeMasked(values, { clipRange: 0.05, maxSummands: 7 }, [{ seed: seed(1), sign: 1 }, { seed: seed(2), sign: -1 }], seededRandom(seed(3)));
    addInto(masked, masked.slice(0, ${n - 3}), 3);
    process.stdout.write(Buffer.from(masked.buffer).toString('base64'));
  `;
  const out = execFileSync(process.execPath, ['--jitless', '--no-warnings', '--input-type=module', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const scalar = new Uint32Array(new Uint8Array(Buffer.from(out, 'base64')).buffer);
  const seed = (b: number): Uint8Array => new Uint8Array(32).fill(b);
  const values = new Float32Array(n).map((_, i) => Math.sin(i) * 0.08);
  const simd = encodeMasked(values, { clipRange: 0.05, maxSummands: 7 }, [{ seed: seed(1), sign: 1 }, { seed: seed(2), sign: -1 }], seededRandom(seed(3)));
  addInto(simd, simd.slice(0, n - 3), 3);
  assert.deepEqual(scalar, simd);
});
