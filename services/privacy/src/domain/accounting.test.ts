import { test } from 'node:test';
import assert from 'node:assert/strict';
import { epsilonFor } from '@fedmm/dp';
import { accountEpsilon, addCommitted, composedEpsilon, mergeMechanisms } from './accounting.js';
import { resolveNoiseMultiplier, roundEvents } from './mechanisms.js';

const delta = 1e-5;
const round = { samplingRate: 0.1, noiseMultiplier: 1.1, steps: 1 };

test('one event composes to the accountant epsilon of the library', () => {
  const ev = { samplingRate: 0.01, noiseMultiplier: 1.1, steps: 500 };
  assert.ok(Math.abs(composedEpsilon([ev], delta, 'rdp') - epsilonFor({ ...ev, delta })) < 1e-9);
});

test('rounds compose, they do not add: k rounds cost less than k times one round', () => {
  const one = composedEpsilon([round], delta, 'rdp');
  const ten = composedEpsilon(Array.from({ length: 10 }, () => round), delta, 'rdp');
  assert.ok(ten > one);
  assert.ok(ten < 10 * one * 0.7, `10 rounds ${ten} vs 10 x ${one}`);
  assert.ok(Math.abs(ten - epsilonFor({ ...round, steps: 10, delta })) < 1e-9, 'merged steps equal one 10-step event');
});

test('heterogeneous events compose to more than each alone', () => {
  const a = { samplingRate: 0.1, noiseMultiplier: 1.0, steps: 5 };
  const b = { samplingRate: 0.2, noiseMultiplier: 2.0, steps: 5 };
  const both = composedEpsilon([a, b], delta, 'rdp');
  assert.ok(both > composedEpsilon([a], delta, 'rdp') && both > composedEpsilon([b], delta, 'rdp'));
  assert.equal(mergeMechanisms([a, b, a]).length, 2);
});

test('a task account takes the worst tenant (parallel composition), a tenant account composes everything', () => {
  const events = [
    { task: 't1', tenant: 'a', ...round, steps: 4 },
    { task: 't1', tenant: 'b', ...round, steps: 4 },
  ];
  const four = composedEpsilon([{ ...round, steps: 4 }], delta, 'rdp');
  const eight = composedEpsilon([{ ...round, steps: 8 }], delta, 'rdp');
  assert.ok(Math.abs(accountEpsilon({ scope: 'task', delta, accountant: 'rdp' }, events) - four) < 1e-12);
  assert.ok(Math.abs(accountEpsilon({ scope: 'tenant', delta, accountant: 'rdp' }, events) - eight) < 1e-12);
});

test('committed events merge per task, tenant and mechanism', () => {
  const one = { task: 't', tenant: 'a', ...round };
  const list = addCommitted(addCommitted([], [one, one]), [one, { ...one, task: 'u' }]);
  assert.deepEqual(list.map((e) => [e.task, e.steps]), [['t', 3], ['u', 1]]);
});

test('PLD is at least as tight as RDP on the same events', () => {
  const ev = [{ samplingRate: 0.5, noiseMultiplier: 2, steps: 3 }];
  const pld = composedEpsilon(ev, delta, 'pld');
  const rdp = composedEpsilon(ev, delta, 'rdp');
  assert.ok(pld > 0 && pld <= rdp, `pld ${pld} rdp ${rdp}`);
});

test('round events: client-level gives each company of the population one step, record-level each its own DP-SGD', () => {
  assert.deepEqual(roundEvents({ mode: 'client', population: ['a', 'b', 'a'], samplingRate: 0.5, noiseMultiplier: 1.2 }), [
    { tenant: 'a', samplingRate: 0.5, noiseMultiplier: 1.2, steps: 1 },
    { tenant: 'b', samplingRate: 0.5, noiseMultiplier: 1.2, steps: 1 },
  ]);
  const rec = roundEvents({ mode: 'record', clients: [{ tenant: 'a', samplingRate: 0.01, noiseMultiplier: 1, steps: 50 }] });
  assert.deepEqual(rec, [{ tenant: 'a', samplingRate: 0.01, noiseMultiplier: 1, steps: 50 }]);
  assert.throws(() => roundEvents({ mode: 'client', population: [], samplingRate: 0.5, noiseMultiplier: 1 }), { code: 'INVALID_ARGUMENT' });
});

test('the noise multiplier is the configured one, or calibrated to the target over the whole schedule', () => {
  assert.equal(resolveNoiseMultiplier({ noiseMultiplier: 1.3, delta, samplingRate: 0.1, steps: 10 }), 1.3);
  const sigma = resolveNoiseMultiplier({ targetEpsilon: 3, delta, samplingRate: 0.1, steps: 50 });
  const eps = epsilonFor({ samplingRate: 0.1, noiseMultiplier: sigma, steps: 50, delta });
  assert.ok(eps <= 3 && eps > 2.9, `calibrated sigma ${sigma} gives ${eps}`);
  assert.throws(() => resolveNoiseMultiplier({ delta, samplingRate: 0.1, steps: 10 }), { code: 'INVALID_ARGUMENT' });
});
