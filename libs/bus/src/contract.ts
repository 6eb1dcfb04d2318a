import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { waitFor } from '@fedmm/core';
import type { Bus, BusMessage, Consumer } from './port.js';

/**
 * The behaviour every bus adapter must have. Each adapter's test file calls this with a factory;
 * the Kafka run goes against a real broker.
 */
export function runBusContract(name: string, makeBus: () => Promise<Bus>, opts: { rebalanceTimeoutMs?: number } = {}): void {
  const timeoutMs = opts.rebalanceTimeoutMs ?? 60_000;
  describe(`bus contract: ${name}`, () => {
    let bus: Bus;
    const consumers: Consumer[] = [];
    before(async () => {
      bus = await makeBus();
    });
    after(async () => {
      await Promise.allSettled(consumers.map((c) => c.stop()));
      await bus.close();
    });
    const uniq = (p: string): string => `contract.${p}.${randomUUID().slice(0, 8)}`;

    test('key, value and headers round trip; offsets are reported', async () => {
      const topic = uniq('roundtrip');
      await bus.ensureTopic(topic, { partitions: 2 });
      const value = new Uint8Array([0, 1, 2, 250, 255]);
      const [po] = await bus.publish(topic, [{ key: 'k1', value, headers: { client: 'acme', seq: '7' } }]);
      assert.ok(po);
      assert.equal(po.partition, await bus.partitionFor(topic, 'k1'));
      const got: BusMessage[] = [];
      const c = await bus.subscribe({ group: uniq('g'), topics: [topic], handler: async (m) => { got.push(m); } });
      consumers.push(c);
      await waitFor(() => got.length >= 1, { timeoutMs, what: 'the message' });
      const m = got[0]!;
      assert.equal(m.key, 'k1');
      assert.deepEqual([...m.value], [...value]);
      assert.equal(m.headers['client'], 'acme');
      assert.equal(m.headers['seq'], '7');
      assert.equal(m.partition, po.partition);
      await c.stop();
    });

    test('messages with one key arrive in the order they were published', async () => {
      const topic = uniq('order');
      await bus.ensureTopic(topic, { partitions: 4 });
      const keys = ['a', 'b', 'c', 'd', 'e'];
      const batch = [];
      for (let i = 0; i < 200; i++) batch.push({ key: keys[i % keys.length]!, value: Buffer.from(String(i)) });
      await bus.publish(topic, batch.slice(0, 100));
      await bus.publish(topic, batch.slice(100));
      const seen = new Map<string, number[]>();
      const c = await bus.subscribe({ group: uniq('g'), topics: [topic], handler: async (m) => {
        const arr = seen.get(m.key) ?? [];
        arr.push(Number(m.value.toString()));
        seen.set(m.key, arr);
      } });
      consumers.push(c);
      await waitFor(() => [...seen.values()].reduce((s, a) => s + a.length, 0) >= 200, { timeoutMs, what: '200 messages' });
      for (const [k, arr] of seen) {
        const sorted = [...arr].sort((x, y) => x - y);
        assert.deepEqual(arr, sorted, `key ${k} out of order`);
        assert.equal(arr.length, 40);
      }
      await c.stop();
    });

    test('a consumer that stops before commit: the next member of its group gets the message again', async () => {
      const topic = uniq('redeliver');
      const group = uniq('g');
      await bus.ensureTopic(topic, { partitions: 1 });
      await bus.publish(topic, [{ key: 'x', value: Buffer.from('first') }, { key: 'x', value: Buffer.from('second') }]);
      const firstSeen: string[] = [];
      const c1 = await bus.subscribe({ group, topics: [topic], handler: async (m, c) => {
        firstSeen.push(m.value.toString());
        if (m.value.toString() === 'first') await c.commitMessage(m);
      } });
      await waitFor(() => firstSeen.length >= 2, { timeoutMs, what: 'both messages at the first consumer' });
      await c1.stop();
      const secondSeen: string[] = [];
      const c2 = await bus.subscribe({ group, topics: [topic], handler: async (m, c) => {
        secondSeen.push(m.value.toString());
        await c.commitMessage(m);
      } });
      consumers.push(c2);
      await waitFor(() => secondSeen.length >= 1, { timeoutMs, what: 'redelivery' });
      assert.deepEqual(secondSeen, ['second'], 'only the uncommitted message is delivered again');
      const committed = await bus.committedOffsets(group, topic);
      assert.equal(committed[0]?.offset, '2');
      await c2.stop();
    });

    test('two consumers split the partitions; when one stops the other receives its uncommitted messages', async () => {
      const topic = uniq('split');
      const group = uniq('g');
      await bus.ensureTopic(topic, { partitions: 4 });
      const seenA: BusMessage[] = [];
      const seenB: BusMessage[] = [];
      const a = await bus.subscribe({ group, topics: [topic], handler: async (m) => { seenA.push(m); } });
      const b = await bus.subscribe({ group, topics: [topic], handler: async (m, c) => { seenB.push(m); await c.commitMessage(m); } });
      consumers.push(a, b);
      await waitFor(() => a.assignment().length > 0 && b.assignment().length > 0 && a.assignment().length + b.assignment().length === 4,
        { timeoutMs, what: 'both members to own partitions', intervalMs: 100 });
      const aParts = new Set(a.assignment().map((p) => p.partition));
      const bParts = new Set(b.assignment().map((p) => p.partition));
      assert.equal([...aParts].filter((p) => bParts.has(p)).length, 0, 'no partition is owned twice');
      const msgs = Array.from({ length: 40 }, (_, i) => ({ key: `key-${i}`, value: Buffer.from(`m${i}`) }));
      await bus.publish(topic, msgs);
      await waitFor(() => seenA.length + seenB.length >= 40, { timeoutMs, what: 'all 40 messages across the group' });
      assert.ok(seenA.length > 0 && seenB.length > 0, 'both members received messages');
      assert.ok(seenA.every((m) => aParts.has(m.partition)));
      const fromA = new Set(seenA.map((m) => m.value.toString()));
      await a.stop();
      await waitFor(() => [...fromA].every((v) => seenB.some((m) => m.value.toString() === v)), { timeoutMs, what: "the stopped member's uncommitted messages at the survivor" });
      await b.stop();
    });
  });
}
