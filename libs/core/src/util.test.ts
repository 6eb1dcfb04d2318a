import { test } from 'node:test';
import assert from 'node:assert/strict';
import { repeat, sleep } from './util.js';

test('repeat runs again after each run settles, never two at once, and survives a failing run', async () => {
  let running = 0;
  let most = 0;
  let runs = 0;
  const r = repeat(async () => {
    runs++;
    running++;
    most = Math.max(most, running);
    await sleep(15);
    running--;
    if (runs === 2) throw new Error('one bad run');
  }, 1);
  await sleep(150);
  await r.stop();
  assert.ok(runs >= 3, `ran ${runs} times`);
  assert.equal(most, 1);
});

test('after stop resolves, the run in flight has finished and no other starts', async () => {
  let finished = 0;
  let started = 0;
  const r = repeat(async () => {
    started++;
    await sleep(40);
    finished++;
  }, 1);
  await sleep(10); // the first run is in flight
  await r.stop();
  assert.equal(r.stopped, true);
  assert.equal(finished, started, 'stop waited for the run in flight');
  const before = started;
  await sleep(80);
  assert.equal(started, before, 'no run started after stop');
});
