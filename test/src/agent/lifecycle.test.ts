// The company agent as a long-lived service, in every start and stop order: started before its
// tasks exist, with one task missing among several, for a task it is not a member of, and stopped
// with SIGTERM in the middle of training. `fedmm client run` processes over mutual TLS against the
// five services on real Kafka and Redis.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '@fedmm/core';
import { uniqueId } from '../support/env.js';
import { logIs, readAgentState, startCuttingRelay, useAgentFederation, type AgentProcess } from './harness.js';

const REDIS_DB = 14;
const WAITING = 'the task does not exist yet on the platform; waiting for it';
// Rechecks a missing task at least every 2 s, so a test does not wait out the 15 s default.
const RECHECK = ['--task-recheck', '2'];

const alive = (a: AgentProcess): boolean => a.child.exitCode === null && a.child.signalCode === null;

describe('company agent start and stop orders on the real platform', { timeout: 240_000 }, () => {
  const fed = useAgentFederation('agent-lifecycle', 13, REDIS_DB);
  const agent = (tenant: string, taskIds: string | string[], work: string, extraArgs: string[] = RECHECK, gateway?: string): AgentProcess =>
    fed.agent(tenant, taskIds, work, { extraArgs, ...(gateway ? { gateway } : {}) });
  const openTask = (taskId: string, members: string[], epochs = 1): Promise<void> =>
    fed.platform.openTask({ taskId, modelId: fed.modelId, baseVersionId: fed.baseVersion, members, selection: { fraction: 1, minClients: 1, maxClients: 0 }, clientConfig: { local_epochs: epochs, batch_size: 8, learning_rate: 0.01 } });

  test('an agent started before its task exists waits, then answers round 1 once the task is created', async () => {
    const taskId = uniqueId('agent-early');
    const a = agent('gridco', taskId, 'early');
    const waiting = await a.waitFor(logIs(WAITING), 'the agent to say it waits for the task', 30_000);
    assert.equal(waiting['task'], taskId);
    assert.equal(waiting['recheckEverySeconds'], 2);
    // A few rechecks later it is still running and has said so only once.
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok(alive(a), `the agent kept running while the task did not exist:\n${a.tail()}`);
    assert.equal(a.count(WAITING), 1, 'the wait is logged once, not on every recheck');

    // The task is created with round 1 already open: the agent must catch up on it.
    await openTask(taskId, ['gridco']);
    const round = await fed.platform.published(taskId, 1, 60_000);
    assert.deepEqual(round.received, ['gridco']);
    assert.ok(a.records.some((r) => r.msg === 'the task now exists; joining it' && r['task'] === taskId));
    assert.equal(a.count('update uploaded'), 1);
    assert.equal(readAgentState(a).rounds[`${taskId}/1/${round.attempt}`]?.status, 'done');
    await a.stop();
  });

  test('a missing task does not hold up the others, and is joined as soon as it is created', async () => {
    const present = uniqueId('agent-present');
    const later = uniqueId('agent-later');
    await openTask(present, ['gridco']);
    const a = agent('gridco', [later, present], 'several');
    const first = await fed.platform.published(present, 1, 60_000);
    assert.deepEqual(first.received, ['gridco'], 'the existing task was served while the other was missing');
    assert.ok(a.records.some((r) => r.msg === WAITING && r['task'] === later));
    assert.ok(alive(a));

    await openTask(later, ['gridco']);
    const second = await fed.platform.published(later, 1, 60_000);
    assert.deepEqual(second.received, ['gridco']);
    await a.waitFor((r) => r.msg === 'update uploaded' && a.count('update uploaded') >= 2, 'both uploads');
    assert.equal(a.count('update uploaded'), 2, 'one upload per task');
    const state = readAgentState(a);
    assert.equal(state.rounds[`${present}/1/${first.attempt}`]?.status, 'done');
    assert.equal(state.rounds[`${later}/1/${second.attempt}`]?.status, 'done');
    await a.stop();
  });

  test('an agent for a task it is not a member of stops with what to do, instead of waiting', async () => {
    const taskId = uniqueId('agent-foreign');
    await openTask(taskId, ['homesafe']);
    const a = agent('gridco', taskId, 'foreign');
    const exit = await a.exited;
    assert.equal(exit.code, 1, `exit code:\n${a.tail()}`);
    const out = a.lines.join('\n');
    assert.match(out, new RegExp(`tenant gridco is not a member of task ${taskId}`));
    assert.match(out, /waiting will not help: ask the consortium to create the task with gridco among its members, or remove --task/);
    assert.equal(a.count(WAITING), 0);
  });

  test('SIGTERM while training stops the agent promptly; the restarted agent trains the round again and uploads once', async (t) => {
    const taskId = uniqueId('agent-sigterm');
    await openTask(taskId, ['homesafe'], 3);
    const a = agent('homesafe', taskId, 'sigterm');
    await a.waitFor(logIs('training'), 'homesafe to start training', 60_000);
    // Progress lines prove training is under way (not only about to start) when the signal lands.
    await new Promise((r) => setTimeout(r, 1000));
    const sentAt = Date.now();
    a.child.kill('SIGTERM');
    const exit = await Promise.race([a.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
    assert.ok(exit, `the agent was still running 20 s after SIGTERM:\n${a.tail()}`);
    t.diagnostic(`stopped ${exit.at - sentAt} ms after SIGTERM (code ${exit.code}, signal ${exit.signal})`);
    assert.equal(exit.signal, null, 'it exited by itself, not killed');
    assert.equal(exit.code, 0, `clean exit:\n${a.tail()}`);
    assert.equal(a.count('update uploaded'), 0, 'nothing was uploaded before the stop');
    if (existsSync(join(a.workDir, 'agent-state.json'))) {
      for (const e of Object.values(readAgentState(a).rounds)) assert.notEqual(e.status, 'done', 'no round is recorded done without an upload');
    }

    const b = agent('homesafe', taskId, 'sigterm');
    const round = await fed.platform.published(taskId, 1, 90_000);
    assert.deepEqual(round.received, ['homesafe']);
    const uploaded = await b.waitFor(logIs('update uploaded'), 'the upload after the restart');
    assert.equal(b.count('update uploaded'), 1);
    const entry = readAgentState(b).rounds[`${taskId}/1/${round.attempt}`];
    assert.equal(entry?.status, 'done');
    assert.equal(entry?.uploadId, uploaded['uploadId']);
    const trained = b.records.find(logIs('trained'));
    t.diagnostic(`training ${String(trained?.['seconds'])} s; longest event-loop stall ${String(trained?.['eventLoopMaxDelayMs'])} ms`);
    await b.stop();
  });

  test('SIGTERM during an upload leaves it uploading; the restarted agent resumes the same upload id and the round counts it once', async (t) => {
    const taskId = uniqueId('agent-upload-stop');
    await openTask(taskId, ['gridco']);
    // The path to the gateway hangs once the upload is under way (about 2.5 KiB go out before the update of about 50 KiB).
    const relay = await startCuttingRelay(fed.platform.gateway.replace('localhost', '127.0.0.1'), 20_000, { stall: true });
    try {
      const a = agent('gridco', taskId, 'upload-stop', RECHECK, `localhost:${relay.port}`);
      await a.waitFor(logIs('trained'), 'gridco to finish training', 60_000);
      await waitFor(async () => relay.cutAt !== undefined, { timeoutMs: 30_000, intervalMs: 50, what: 'the upload to stall' });
      await new Promise((r) => setTimeout(r, 500));
      const sentAt = Date.now();
      a.child.kill('SIGTERM');
      const exit = await Promise.race([a.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
      assert.ok(exit, `the agent was still running 20 s after SIGTERM:\n${a.tail()}`);
      t.diagnostic(`stopped ${exit.at - sentAt} ms after SIGTERM during the upload`);
      assert.equal(exit.code, 0, `clean exit:\n${a.tail()}`);
      const entries = Object.values(readAgentState(a).rounds);
      assert.equal(entries.length, 1);
      assert.equal(entries[0]!.status, 'uploading', 'the interrupted upload is remembered, with its id');
      const uploadId = entries[0]!.uploadId;
      assert.ok(uploadId);

      const b = agent('gridco', taskId, 'upload-stop');
      const round = await fed.platform.published(taskId, 1, 60_000);
      assert.deepEqual(round.received, ['gridco'], 'the update was counted once');
      const uploaded = await b.waitFor(logIs('update uploaded'), 'the resumed upload');
      assert.equal(uploaded['uploadId'], uploadId, 'the same upload id after the restart');
      assert.ok(b.records.some(logIs('resuming the interrupted upload of this round')));
      assert.equal(b.count('training'), 0, 'the restarted agent did not train a second update');
      assert.equal(b.count('update uploaded'), 1);
      assert.equal(readAgentState(b).rounds[`${taskId}/1/${round.attempt}`]?.status, 'done');
      await b.stop();
    } finally {
      await relay.close();
    }
  });
});
