import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedmmError } from '@fedmm/core';
import { quantizationErrorBound } from './fixed-point.js';
import { MaskedSumAccumulator } from './unmask.js';
import { clientIds, clippedSum, maxAbsDiff, runRound } from './test-support.js';

/** The decoded sum must match the clipped float sum within quantization plus float32 rounding. */
function assertSumMatches(run: Awaited<ReturnType<typeof runRound>>, expectedSurvivors: readonly string[]): void {
  const { plan, sum } = run.result;
  assert.deepEqual([...plan.survivors], [...expectedSurvivors].sort());
  assert.ok(sum !== undefined);
  const expected = clippedSum(run.updates, expectedSurvivors, plan.encoding.clipRange);
  const bound = quantizationErrorBound(plan.encoding, expectedSurvivors.length) + expectedSurvivors.length * 2 ** -22;
  const err = maxAbsDiff(sum, expected);
  assert.ok(err <= bound, `max error ${err} exceeds ${bound}`);
}

const fails = (code: string, pattern?: RegExp) => (e: unknown) =>
  isFedmmError(e) && e.code === code && (pattern === undefined || pattern.test(e.message));

for (const [n, numShares, threshold] of [
  [3, 3, 2],
  [10, 10, 6],
  [50, 11, 6],
] as const) {
  test(`the unmasked sum of ${n} clients equals the plain sum within the quantization error`, async () => {
    const run = await runRound({ n, numShares, threshold, vectorLength: 1000, label: `sum-${n}` });
    assertSumMatches(run, clientIds(n));
    // Masked inputs differ from the encodings, so the server never summed plain values.
    assert.equal(run.result.plan.corrections.length, n);
  });
}

test('a round with one client dropping after sharing keys completes from the survivors shares', async () => {
  const ids = clientIds(10);
  const run = await runRound({ n: 10, numShares: 10, threshold: 6, vectorLength: 500, silentAt: { 2: [ids[3]!] }, label: 'drop-1' });
  assertSumMatches(run, ids.filter((id) => id !== ids[3]));
});

test('a round with n - threshold dropouts at every stage completes', async () => {
  const ids = clientIds(10);
  // Two never join, one shares keys and vanishes, one sends its input and vanishes: 6 answer stage 3.
  const run = await runRound({
    n: 10,
    numShares: 10,
    threshold: 6,
    vectorLength: 300,
    silentAt: { 0: [ids[0]!], 1: [ids[1]!], 2: [ids[2]!], 3: [ids[3]!] },
    label: 'drop-4',
  });
  assert.equal(run.unmaskResponses.size, 6);
  assertSumMatches(run, ids.slice(3));
});

test('a client that drops after sending its masked input is recovered from its neighbours', async () => {
  const ids = clientIds(10);
  const run = await runRound({ n: 10, numShares: 10, threshold: 6, vectorLength: 200, silentAt: { 3: ids.slice(0, 4) }, label: 'late' });
  assertSumMatches(run, ids);
});

test('a 50-client ring round survives numShares - threshold dropouts and reveals only the right kind of share', async () => {
  const ids = clientIds(50);
  const gone = [ids[4]!, ids[17]!, ids[18]!, ids[33]!, ids[41]!];
  const run = await runRound({ n: 50, numShares: 11, threshold: 6, vectorLength: 400, silentAt: { 2: gone }, label: 'ring' });
  assertSumMatches(run, ids.filter((id) => !gone.includes(id)));
  for (const [holder, r] of run.unmaskResponses) {
    const seeds = new Set(r.seedShares.map((s) => s.owner));
    for (const k of r.keyShares) {
      assert.ok(gone.includes(k.owner), `${holder} revealed the masking key of survivor ${k.owner}`);
      assert.ok(!seeds.has(k.owner));
    }
    for (const s of seeds) assert.ok(!gone.includes(s), `${holder} revealed the self-mask seed of dropped ${s}`);
    // A ring neighbourhood is 11 clients, so no holder sees more than 11 owners.
    assert.ok(r.seedShares.length + r.keyShares.length <= 11);
  }
});

test('too few masked inputs fail the round before any share is requested', async () => {
  const ids = clientIds(10);
  await assert.rejects(
    runRound({ n: 10, numShares: 10, threshold: 6, vectorLength: 50, silentAt: { 2: ids.slice(0, 5) }, label: 'too-few' }),
    fails('FAILED_PRECONDITION', /only 5 clients sent a masked input.*no shares were requested/),
  );
});

test('too few stage-3 answers fail the round without reconstructing any secret', async () => {
  const ids = clientIds(10);
  await assert.rejects(
    runRound({ n: 10, numShares: 10, threshold: 6, vectorLength: 50, silentAt: { 3: ids.slice(0, 5) }, label: 'mute' }),
    fails('FAILED_PRECONDITION', /cannot be unmasked: fewer than threshold 6 shares/),
  );
});

test('too few joiners fail the round at stage 0', async () => {
  const ids = clientIds(5);
  await assert.rejects(
    runRound({ n: 5, numShares: 5, threshold: 3, vectorLength: 10, silentAt: { 0: ids.slice(0, 3) }, label: 'lonely' }),
    fails('FAILED_PRECONDITION', /only 2 clients answered stage 0/),
  );
});

test('shard workers unmask their own coordinate ranges to the same sum', async () => {
  const ids = clientIds(10);
  const vectorLength = 10_007;
  const run = await runRound({ n: 10, numShares: 5, threshold: 3, vectorLength, receiptsOnly: true, silentAt: { 2: [ids[6]!] }, label: 'shards' });
  assert.equal(run.result.sum, undefined);
  const { plan } = run.result;
  const bounds = [0, 1, 4099, 7777, vectorLength];
  const parts: Float32Array[] = [];
  for (let s = 0; s + 1 < bounds.length; s++) {
    const [a, b] = [bounds[s]!, bounds[s + 1]!];
    const acc = new MaskedSumAccumulator(a, b - a);
    for (const id of plan.survivors) {
      const v = run.maskedVectors.get(id)!;
      // Uploads arrive in chunks that need not align with anything.
      for (let at = a; at < b; at += 1000) acc.add(id, v.subarray(at, Math.min(b, at + 1000)), at);
    }
    parts.push(acc.finish(plan));
  }
  const whole = new Float32Array(vectorLength);
  parts.reduce((at, p) => (whole.set(p, at), at + p.length), 0);
  const expected = clippedSum(run.updates, plan.survivors, 1);
  assert.ok(maxAbsDiff(whole, expected) <= quantizationErrorBound(plan.encoding, 9) + 9 * 2 ** -22);
});

test('a shard sum that includes a non-survivor is refused', async () => {
  const ids = clientIds(4);
  const run = await runRound({ n: 4, numShares: 4, threshold: 3, vectorLength: 16, receiptsOnly: true, silentAt: { 2: [ids[0]!] }, label: 'stray' });
  const acc = new MaskedSumAccumulator(0, 16);
  for (const id of ids.slice(1)) acc.add(id, run.maskedVectors.get(id)!);
  acc.add('client-999', new Uint32Array(16));
  assert.throws(() => acc.finish(run.result.plan), fails('FAILED_PRECONDITION', /unmasks exactly/));
});
