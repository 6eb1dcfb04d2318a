// The company agent end to end: `fedmm client run` processes over mutual TLS against the five
// services on real Kafka and Redis, including a restart of the whole platform in the middle of a round.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Topics } from '@fedmm/bus';
import { events as epb } from '@fedmm/proto';
import { uniqueId } from '../support/env.js';
import { logIs, readAgentState, startCuttingRelay, useAgentFederation, type AgentProcess } from './harness.js';

const REDIS_DB = 9;
// Measured: an agent sends about 2.5 KiB (TLS handshake, subscription, GetTask, download requests)
// before its update, which is about 50 KiB here; a cut at 20 KB falls inside the upload stream,
// after the header and at least one full TLS record of the chunk have reached the gateway.
const CUT_AFTER_BYTES = 20_000;
const TENANTS = ['gridco', 'homesafe'];


describe('company agent on the real platform', { timeout: 300_000 }, () => {
  const fed = useAgentFederation('agent-e2e', 11, REDIS_DB);
  const agent = (tenant: string, taskId: string, work: string, gateway?: string): AgentProcess =>
    fed.agent(tenant, taskId, work, gateway ? { gateway } : {});

  test('an agent joins over mTLS, uploads once, the version names it, and a repeated RoundOpened uploads nothing', async () => {
    const taskId = uniqueId('agent-one');
    // The task comes first here; an agent started before its task is covered in lifecycle.test.ts.
    await fed.platform.openTask({ taskId, modelId: fed.modelId, baseVersionId: fed.baseVersion, members: ['gridco'], selection: { fraction: 1, minClients: 1, maxClients: 0 }, clientConfig: { local_epochs: 1, batch_size: 8, learning_rate: 0.01 } });
    const a = agent('gridco', taskId, 'one');
    const round = await fed.platform.published(taskId, 1, 90_000);
    assert.deepEqual(round.received, ['gridco']);
    const version = await fed.platform.version(round.outputVersionId);
    assert.equal(version.lineage?.taskId, taskId);
    assert.equal(version.lineage?.round, 1);
    assert.deepEqual(version.lineage?.contributingClients, ['gridco']);
    assert.equal(version.lineage?.parentVersionId, fed.baseVersion);

    const uploaded = await a.waitFor(logIs('update uploaded'), 'the upload');
    assert.equal(uploaded['attempts'], 1);
    const key = `${taskId}/1/${round.attempt}`;
    const state = readAgentState(a);
    assert.equal(state.rounds[key]?.status, 'done');
    assert.equal(state.rounds[key]?.uploadId, uploaded['uploadId']);

    // The same RoundOpened once more (Kafka delivers at least once), then a published event the
    // agent logs: events are handled in order, so once that line appears the repeat was handled.
    const opened = epb.RoundEvent.fromPartial({
      taskId, round: 1,
      event: { $case: 'opened', value: { selected: ['gridco'], inputVersionId: fed.baseVersion, deadlineUnixMs: Date.now() + 60_000, attempt: round.attempt, clientConfig: { local_epochs: 1, batch_size: 8, learning_rate: 0.01 } } },
    });
    const published = epb.RoundEvent.fromPartial({ taskId, round: 1, event: { $case: 'published', value: { versionId: round.outputVersionId } } });
    const seen = a.count('round published');
    await fed.platform.platform.bus.publish(Topics.roundEvents, [opened, published].map((e) => ({ key: taskId, value: epb.RoundEvent.encode(e).finish() })));
    await a.waitFor((r) => r.msg === 'round published' && a.records.filter(logIs('round published')).length > seen, 'the repeated events to be handled', 30_000);
    assert.equal(a.count('training'), 1, 'the repeated RoundOpened did not train again');
    assert.equal(a.count('update uploaded'), 1, 'the repeated RoundOpened did not upload again');
    assert.deepEqual(readAgentState(a).rounds[key], state.rounds[key], 'the state file is unchanged');
    assert.deepEqual((await fed.platform.round(taskId, 1)).received, ['gridco']);
    await a.stop();
  });

  test('a restart of the whole platform mid-round: agents reconnect, the round continues from the store, each update counted once', async () => {
    const taskId = uniqueId('agent-restart');
    await fed.platform.openTask({ taskId, modelId: fed.modelId, baseVersionId: fed.baseVersion, members: TENANTS, selection: { fraction: 1, minClients: 2, maxClients: 0 }, clientConfig: { local_epochs: 3, batch_size: 8, learning_rate: 0.01 } });
    const fast = agent('gridco', taskId, 'restart');
    const slow = agent('homesafe', taskId, 'restart');

    // gridco's update lands; homesafe is still training when every service goes down.
    await fast.waitFor(logIs('update uploaded'), 'gridco\'s upload');
    await slow.waitFor(logIs('training'), 'homesafe to start training');
    const before = await fed.platform.round(taskId, 1);
    assert.deepEqual(before.received, ['gridco'], 'only gridco answered before the stop');
    await fed.platform.stop();
    const stoppedAt = fed.platform.stops.at(-1)!;

    // Down until homesafe's finished update has met the closed gateway, so the upload itself must retry.
    await slow.waitFor((r) => r.at > stoppedAt && /upload .* failed; retrying|upload interrupted/.test(r.msg), 'homesafe\'s upload to fail while the platform is down');
    await fed.platform.start();
    const restartedAt = fed.platform.starts.at(-1)!;

    const round = await fed.platform.published(taskId, 1, 120_000);
    assert.equal(round.attempt, before.attempt, 'the coordinator continued the same attempt from the store');
    assert.deepEqual([...round.received].sort(), TENANTS, 'both updates were counted');
    assert.equal(new Set(round.received).size, round.received.length, 'no update was counted twice');
    const version = await fed.platform.version(round.outputVersionId);
    assert.deepEqual([...(version.lineage?.contributingClients ?? [])].sort(), TENANTS);
    assert.equal(new Set(version.lineage?.contributingClients).size, version.lineage?.contributingClients.length);

    for (const a of [fast, slow]) {
      // Both noticed the gateway going away and came back through the backoff path.
      const broke = await a.waitFor((r) => r.at > stoppedAt && /round-event stream (broke|ended); reconnecting/.test(r.msg), `${a.tenant} to see the stream break`);
      assert.ok(broke.at < restartedAt + 60_000);
      assert.ok(a.records.some((r) => r.at > stoppedAt && r.level === 'warn' && /failed; retrying|reconnecting/.test(r.msg)), `${a.tenant} retried with backoff`);
      assert.equal(a.count('update uploaded'), 1, `${a.tenant} uploaded exactly once`);
      assert.equal(readAgentState(a).rounds[`${taskId}/1/${round.attempt}`]?.status, 'done');
    }
    const landed = await slow.waitFor(logIs('update uploaded'), 'homesafe\'s upload');
    assert.ok(landed.at > restartedAt, 'homesafe\'s update landed on the restarted platform');
    assert.ok(Number(landed['attempts']) > 1, `the upload took more than one try (${String(landed['attempts'])})`);
    await Promise.all([fast.stop(), slow.stop()]);
  });

  test('an upload cut mid-stream resumes under the same upload id and the round publishes with it once', async (t) => {
    const taskId = uniqueId('agent-cut');
    await fed.platform.openTask({ taskId, modelId: fed.modelId, baseVersionId: fed.baseVersion, members: ['gridco'], selection: { fraction: 1, minClients: 1, maxClients: 0 }, clientConfig: { local_epochs: 1, batch_size: 8, learning_rate: 0.01 } });
    const relay = await startCuttingRelay(fed.platform.gateway.replace('localhost', '127.0.0.1'), CUT_AFTER_BYTES);
    try {
      const a = agent('gridco', taskId, 'cut', `localhost:${relay.port}`);
      const round = await fed.platform.published(taskId, 1, 90_000);
      assert.ok(relay.cutAt !== undefined, 'the relay cut the connection');
      assert.ok(relay.connections >= 2, 'the agent dialled again after the cut');
      const uploaded = await a.waitFor(logIs('update uploaded'), 'the upload');
      t.diagnostic(`cut at ${relay.cutAt} of ${relay.sent} client bytes; update ${String(uploaded['bytes'])} bytes, resumed from ${JSON.stringify(uploaded['resumedFrom'])}`);
      assert.ok(Number(uploaded['attempts']) >= 2, `the upload was retried (attempts ${String(uploaded['attempts'])}, cut at ${relay.cutAt} bytes):\n${a.tail()}`);
      assert.ok(a.records.some((r) => r.level === 'warn' && /^upload .* failed; retrying$/.test(r.msg) && r['attempt'] === 1), 'the cut upload was retried with backoff');
      assert.equal(a.count('update uploaded'), 1);
      assert.equal(a.count('training'), 1, 'the update was not trained again');
      assert.deepEqual(round.received, ['gridco']);
      assert.deepEqual((await fed.platform.version(round.outputVersionId)).lineage?.contributingClients, ['gridco']);
      const entry = readAgentState(a).rounds[`${taskId}/1/${round.attempt}`];
      assert.equal(entry?.status, 'done');
      assert.equal(entry?.uploadId, uploaded['uploadId'], 'one upload id from the first byte to the last');
      await a.stop();
    } finally {
      await relay.close();
    }
  });
});
