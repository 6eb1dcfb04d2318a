import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '@fedmm/core';
import { Topics, type BusMessage, type Consumer } from '@fedmm/bus';
import { task as tpb } from '@fedmm/proto';
import { storeKey } from '@fedmm/store';
import { fixedPointScale, relayRoundParts } from '@fedmm/secagg';
import { decodeMaskedChunk, isMaskedChunk, recordKind } from '@fedmm/tensor';
import { uniqueId } from '../support/env.js';
import { downloadTensors } from '../support/models.js';
import { startGroupAtEnd } from '../observability/platform.js';
import { startSecurePlatform, TENANTS, type DropAt, type SecurePlatform } from './platform.js';

const CLIP = 1;
const N = 4096;
// Chi-square critical value for 255 degrees of freedom at p = 0.001.
const CHI2_CRITICAL = 330.5;

/** A client's update: smooth, varied values well inside the clip norm (norm about 0.5). */
function updateOf(i: number): Float32Array {
  const u = new Float32Array(N);
  for (let j = 0; j < N; j++) u[j] = (0.5 / Math.sqrt(N)) * Math.sin(0.01 * j * (i + 1) + i);
  return u;
}

function chiSquareOfBytes(bytes: Uint8Array): number {
  const counts = new Float64Array(256);
  for (const b of bytes) counts[b]!++;
  const expected = bytes.length / 256;
  let chi = 0;
  for (const c of counts) chi += (c - expected) ** 2 / expected;
  return chi;
}

/** The round's published adapters as one vector in layout order. */
async function published(p: SecurePlatform, taskId: string): Promise<Float32Array> {
  await waitFor(async () => {
    const r = (await p.coordinator.getRound({ taskId, number: 1 })).round!;
    if (r.state === tpb.RoundState.ROUND_STATE_FAILED) throw new Error(`the round failed: ${r.failureReason}`);
    return r.state === tpb.RoundState.ROUND_STATE_PUBLISHED;
  }, { timeoutMs: 60_000, intervalMs: 200, what: 'the secure round to publish' });
  const r = (await p.coordinator.getRound({ taskId, number: 1 })).round!;
  const tensors = await downloadTensors(p.registry.address, r.outputVersionId);
  const out = new Float32Array(N);
  for (const e of p.layout.entries) out.set(tensors.get(e.name)!, e.offset);
  return out;
}

/** Runs one round with `members` (client i sends updateOf(i)) and checks the published mean of the survivors. */
async function runRound(p: SecurePlatform, members: string[], threshold: number, drops: Record<string, DropAt>, deadline: number): Promise<{ taskId: string; out: Float32Array; expected: Float32Array; bound: number }> {
  const taskId = await p.openTask(members, { clipNorm: CLIP, secaggThreshold: threshold }, deadline);
  const updates = members.map((_, i) => updateOf(i));
  await Promise.all(members.map((m, i) => p.runClient(taskId, m, updates[i]!, CLIP, drops[m] ?? 'never')));
  const out = await published(p, taskId);
  const survivors = members.map((m, i) => ({ m, i })).filter(({ m }) => (drops[m] ?? 'never') === 'never' || drops[m] === 'after-upload');
  const expected = new Float32Array(N);
  for (const { i } of survivors) for (let j = 0; j < N; j++) expected[j]! += updates[i]![j]! / survivors.length;
  // The sum is off by less than K steps per coordinate, so the mean by less than one step; plus float32 rounding.
  const bound = 1 / fixedPointScale({ clipRange: CLIP, maxSummands: members.length }) + 1e-6;
  return { taskId, out, expected, bound };
}

function maxError(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let j = 0; j < a.length; j++) m = Math.max(m, Math.abs(a[j]! - b[j]!));
  return m;
}

describe('secure aggregation through the platform (gateway over mTLS, Kafka, Redis, sharded workers)', { timeout: 240_000 }, () => {
  let p: SecurePlatform;
  let consumer: Consumer;
  const records: BusMessage[] = [];

  before(async () => {
    p = await startSecurePlatform(11);
    const group = uniqueId('secagg-watch');
    await startGroupAtEnd(p.bus, group);
    consumer = await p.bus.subscribe({ group, topics: [Topics.updates], fromBeginning: false, handler: async (m) => { records.push(m); } });
  });

  after(async () => {
    await consumer?.stop();
    await p?.stop();
  });

  test('3 clients: the version is previous + mean of the updates within the quantization bound; masked chunks on Kafka look uniform', async () => {
    const members = TENANTS.slice(0, 3);
    const { taskId, out, expected, bound } = await runRound(p, members, 2, {}, 30);
    const err = maxError(out, expected);
    assert.ok(err <= bound, `max error ${err} exceeds ${bound}`);
    // What the platform saw of acme: masked chunks only, whose bytes pass a chi-square test of uniformity.
    const mine = records.filter((m) => recordKind(m.headers) === 'chunk' && isMaskedChunk(m.headers)).map((m) => decodeMaskedChunk(m.headers, m.value)).filter((c) => c.task === taskId && c.client === 'acme');
    assert.ok(mine.length >= 3, `acme's masked chunks on fedmm.updates: ${mine.length}`);
    const words = new Uint32Array(N);
    for (const c of mine) words.set(c.words, c.elementOffset);
    const bytes = new Uint8Array(words.buffer);
    const chi = chiSquareOfBytes(bytes);
    assert.ok(chi < CHI2_CRITICAL, `masked bytes chi-square ${chi}`);
    // The same test rejects the plain update, and the masked words are not it.
    const plain = new Uint8Array(updateOf(0).buffer);
    assert.ok(chiSquareOfBytes(plain) > CHI2_CRITICAL);
    assert.notDeepEqual(bytes, plain);
    // The round is over: nothing of its protocol is left in the store (plan, snapshots, relay).
    assert.deepEqual(await p.store.list(storeKey('aggregator', 'secagg-plan', taskId, '')), []);
    assert.deepEqual(await p.store.list(storeKey(...relayRoundParts(taskId, 1))), []);
  });

  test('one client drops after sending its masked input: its self mask is removed from the survivors\' shares', async () => {
    const { out, expected, bound } = await runRound(p, TENANTS, 3, { hooli: 'after-upload' }, 20);
    assert.ok(maxError(out, expected) <= bound, `max error ${maxError(out, expected)}`);
  });

  test('n - threshold dropouts (one before setup, one after sharing keys) still complete with the mean of the survivors', async () => {
    const { out, expected, bound } = await runRound(p, TENANTS, 3, { acme: 'before-setup', globex: 'after-keys' }, 15);
    assert.ok(maxError(out, expected) <= bound, `max error ${maxError(out, expected)}`);
  });

  test('too many dropouts: the round fails with a clear reason, asks for no share and stores no plan', async () => {
    const taskId = await p.openTask(TENANTS, { clipNorm: CLIP, secaggThreshold: 3 }, 12);
    await Promise.all(TENANTS.map((m, i) => p.runClient(taskId, m, updateOf(i), CLIP, i < 3 ? 'after-keys' : 'never').catch(() => undefined)));
    let round!: tpb.Round;
    await waitFor(async () => {
      round = (await p.coordinator.getRound({ taskId, number: 1 })).round!;
      return round.state === tpb.RoundState.ROUND_STATE_FAILED;
    }, { timeoutMs: 40_000, intervalMs: 200, what: 'the round to fail' });
    assert.match(round.failureReason, /secure aggregation failed: .*only 2 clients sent a masked input in stage 2, below threshold 3; no shares were requested or revealed/);
    assert.deepEqual(await p.store.list(storeKey('aggregator', 'secagg-plan', taskId, '')), []);
    assert.deepEqual(await p.store.list(storeKey(...relayRoundParts(taskId, 1))), []);
  });

  test('client-level DP on top: noise of std sigma C / K on the unmasked mean', async () => {
    const sigma = 0.5;
    const members = TENANTS.slice(0, 3);
    const taskId = await p.openTask(members, { clipNorm: CLIP, secaggThreshold: 2, mode: 'client', noiseMultiplier: sigma, delta: 1e-5 }, 30);
    await Promise.all(members.map((m, i) => p.runClient(taskId, m, updateOf(i), CLIP)));
    const out = await published(p, taskId);
    const expected = new Float32Array(N);
    for (let i = 0; i < 3; i++) for (let j = 0; j < N; j++) expected[j]! += updateOf(i)[j]! / 3;
    let ss = 0;
    for (let j = 0; j < N; j++) ss += (out[j]! - expected[j]!) ** 2;
    const std = Math.sqrt(ss / N);
    const want = (sigma * CLIP) / 3;
    assert.ok(Math.abs(std - want) < 0.08 * want, `noise std ${std}, expected ${want}`);
  });
});
