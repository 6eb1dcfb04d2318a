import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@fedmm/core';
import { EmbeddedBus } from '@fedmm/bus';
import { measureLag, startLagProbe } from './lag-probe.js';

test('lag is end minus committed per partition, the whole partition before any commit', async () => {
  const bus = new EmbeddedBus();
  try {
    await bus.ensureTopic('t', { partitions: 2 });
    const sent = await bus.publish('t', Array.from({ length: 6 }, (_, i) => ({ key: `k${i}`, value: Buffer.from([i]) })));
    const perPartition = [0, 1].map((p) => sent.filter((s) => s.partition === p).length);
    assert.ok(perPartition[0]! > 0 && perPartition[1]! > 0, 'the keys spread over both partitions');
    assert.deepEqual((await measureLag(bus, 'g', 't')).map((l) => l.lag), perPartition);

    const seen: number[] = [];
    const consumer = await bus.subscribe({ group: 'g', topics: ['t'], handler: async (msg, c) => {
      seen.push(msg.partition);
      // Commit only partition 0: partition 1 stays behind.
      if (msg.partition === 0) await c.commitMessage(msg);
    } });
    const probe = startLagProbe({ bus, group: 'g', topics: ['t'], log: createLogger({}, 'error'), intervalMs: 20 });
    const deadline = Date.now() + 5000;
    let lags = await probe.probe();
    while (Date.now() < deadline && lags[0]!.lag !== 0) {
      await new Promise((r) => setTimeout(r, 20));
      lags = await probe.probe();
    }
    await probe.stop();
    await consumer.stop();
    assert.deepEqual(lags.map((l) => ({ topic: l.topic, partition: l.partition, lag: l.lag })), [
      { topic: 't', partition: 0, lag: 0 },
      { topic: 't', partition: 1, lag: perPartition[1] },
    ]);
  } finally {
    await bus.close();
  }
});
