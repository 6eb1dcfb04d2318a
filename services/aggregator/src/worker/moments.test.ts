import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startingMoments, type SavedMoments } from './worker.js';

const saved = (round: number, attempt: number, before?: string): SavedMoments => ({ round, attempt, moments: `m${round}.${attempt}`, ...(before !== undefined ? { before } : {}) });

test('a round steps from the moments its published predecessor wrote', () => {
  assert.equal(startingMoments(saved(3, 1, 'm2.1'), { number: 4, attempt: 1 }, { state: 'published', attempt: 1 }), 'm3.1');
  // A round without contributors on this shard wrote nothing: the moments of an older round still hold.
  assert.equal(startingMoments(saved(2, 2, 'm1.1'), { number: 4, attempt: 1 }, { state: 'published', attempt: 2 }), 'm2.2');
});

test('moments written by a failed attempt are skipped for the ones that attempt started from', () => {
  // Attempt 1 of round 4 advanced the moments, then failed: attempt 2 starts where attempt 1 did.
  assert.equal(startingMoments(saved(4, 1, 'm3.1'), { number: 4, attempt: 2 }, undefined), 'm3.1');
  // The first round's failed attempt started from fresh moments.
  assert.equal(startingMoments(saved(1, 1), { number: 1, attempt: 2 }, undefined), undefined);
  // A failed attempt of an earlier round (its retry had no contributors on this shard): its start, not its result.
  assert.equal(startingMoments(saved(3, 1, 'm2.1'), { number: 4, attempt: 1 }, { state: 'published', attempt: 2 }), 'm2.1');
  assert.equal(startingMoments(saved(3, 1, 'm2.1'), { number: 4, attempt: 1 }, { state: 'failed', attempt: 1 }), 'm2.1');
});

test('a shard computed again by the attempt that already saved its moments steps from the same start', () => {
  assert.equal(startingMoments(saved(4, 2, 'm3.1'), { number: 4, attempt: 2 }, undefined), 'm3.1');
});
