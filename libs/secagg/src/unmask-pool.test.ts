import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { UnmaskPlan } from './messages.js';
import { encode } from './fixed-point.js';
import { applyMasks } from './prg.js';
import { seededRandom } from './random.js';
import { MaskedSumAccumulator, unmaskShard } from './unmask.js';
import { UnmaskPool } from './unmask-pool.js';
import { seedOf } from './test-support.js';

const pools: UnmaskPool[] = [];
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

function pool(threads: number, minParallelWork = 0): UnmaskPool {
  const p = new UnmaskPool({ threads, minParallelWork });
  pools.push(p);
  return p;
}

function plan(vectorLength: number, masks: number): UnmaskPlan {
  return {
    roundId: 'pool-test',
    vectorLength,
    survivors: ['a', 'b'],
    corrections: Array.from({ length: masks }, (_, i) => ({ seed: seedOf(`pool/${i}`), sign: i % 3 === 0 ? -1 : 1 })),
    encoding: { clipRange: 1, maxSummands: 4 },
  };
}

function words(label: string, n: number): Uint32Array {
  const out = new Uint32Array(n);
  seededRandom(seedOf(label)).fill(new Uint8Array(out.buffer));
  return out;
}

test('a pool unmasks a shard to the same words as the calling thread alone', async () => {
  const p = plan(1_000_000, 5);
  for (const threads of [1, 2, 3]) {
    const shared = pool(threads);
    for (const [offset, n] of [[0, 1], [0, 7], [3, 13], [5, 100_003], [999_990, 10], [0, 1_000_000]] as const) {
      const masked = words(`pool/sum/${n}`, n);
      const expected = unmaskShard({ plan: p, maskedSum: masked.slice(), offset });
      const got = await shared.unmaskShard({ plan: p, maskedSum: masked, offset });
      assert.equal(got, masked, 'unmasks in place');
      assert.deepEqual(got, expected, `threads ${threads}, offset ${offset}, length ${n}`);
    }
  }
});

test('a pool removes the masks that the clients added', async () => {
  const p = plan(50_001, 4);
  const encoded = encode(new Float32Array(50_001).map((_, i) => Math.cos(i)), p.encoding, seededRandom(seedOf('pool/enc')));
  const masked = encoded.slice();
  applyMasks(masked, p.corrections);
  assert.deepEqual(await pool(2).unmaskShard({ plan: p, maskedSum: masked, offset: 0 }), encoded);
});

test('an accumulator finishes in a pool as it does alone, and refuses the wrong contributors', async () => {
  const p = plan(40_000, 3);
  const make = (): MaskedSumAccumulator => {
    const acc = new MaskedSumAccumulator(10_000, 20_000);
    acc.add('a', words('pool/a', 20_000));
    acc.add('b', words('pool/b', 20_000));
    return acc;
  };
  assert.deepEqual(await make().finishInPool(p, pool(2)), make().finish(p));
  const wrong = new MaskedSumAccumulator(0, 10);
  wrong.add('a', new Uint32Array(10));
  await assert.rejects(wrong.finishInPool(p, pool(2)), { code: 'FAILED_PRECONDITION' });
});

test('a pool refuses a range outside the vector, bad sizes, and work after close', async () => {
  const p = plan(100, 2);
  await assert.rejects(pool(2).unmaskShard({ plan: p, maskedSum: new Uint32Array(10), offset: 95 }), { code: 'INVALID_ARGUMENT' });
  assert.throws(() => new UnmaskPool({ threads: 0 }), /1 to 256 threads/);
  assert.throws(() => new UnmaskPool({ minParallelWork: -1 }), /minParallelWork/);
  const closed = new UnmaskPool({ threads: 2, minParallelWork: 0 });
  await closed.unmaskShard({ plan: p, maskedSum: new Uint32Array(100), offset: 0 });
  await closed.close();
  await assert.rejects(closed.unmaskShard({ plan: p, maskedSum: new Uint32Array(100), offset: 0 }), /closed/);
});

test('a process with an idle pool exits, whatever flags it was started with', () => {
  // The child's own flags (--input-type) would break a worker that inherited them, and an idle
  // worker that held the event loop would keep the child alive until the timeout.
  const index = fileURLToPath(new URL('./index.js', import.meta.url));
  const script = `
    import { UnmaskPool } from ${JSON.stringify(index)};
    const pool = new UnmaskPool({ threads: 2, minParallelWork: 0 });
    const plan = { roundId: 'exit', vectorLength: 1000, survivors: ['a'], corrections: [{ seed: new Uint8Array(32), sign: 1 }], encoding: { clipRange: 1, maxSummands: 2 } };
    const words = await pool.unmaskShard({ plan, maskedSum: new Uint32Array(1000), offset: 0 });
    process.stdout.write(String(words[999]));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
  const plan: UnmaskPlan = { roundId: 'exit', vectorLength: 1000, survivors: ['a'], corrections: [{ seed: new Uint8Array(32), sign: 1 }], encoding: { clipRange: 1, maxSummands: 2 } };
  assert.equal(out, String(unmaskShard({ plan, maskedSum: new Uint32Array(1000), offset: 0 })[999]));
});
