import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '@fedmm/core';
import { SqliteStore, storeKey } from '@fedmm/store';
import {
  addInto, decodeSecAggMessage, encodeSecAggMessage, quantizationErrorBound, relayKeyParts, SecAggClient, SECAGG_SERVER_PARTY,
  unmaskAndDecodeShard, type RelayEntry,
} from '@fedmm/secagg';
import { secaggPlanKey } from '../domain/keys.js';
import type { RoundRecord, TaskRecord } from '../domain/types.js';
import { SecAggDriver, unmaskedSurvivors, type SecAggStep } from './driver.js';
import { decodePlan } from './plan-codec.js';

const L = 300;
const CLIENTS = ['a', 'b', 'c', 'd'];
const STAGES = ['setup', 'share-keys', 'collect-masked', 'unmask'] as const;

test('a coordinator that restarts at every stage rebuilds the server from the store and the plan unmasks the survivors\' sum', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedmm-secagg-driver-'));
  const store = new SqliteStore(join(dir, 'store.db'));
  const log = createLogger({ test: 'secagg-driver' }, 'error');
  // Each stage is run by a new driver: a new leader that holds nothing in memory.
  const driver = (): SecAggDriver => new SecAggDriver(store, async (w) => { assert.ok(await store.atomic([], w)); }, log);
  const task = { taskId: 't1', roundDeadlineSeconds: 60, privacy: { clipNorm: 1, secaggNumShares: 0, secaggThreshold: 3 } } as unknown as TaskRecord;
  const now = Date.now();
  let r = { taskId: 't1', number: 1, attempt: 1, selected: CLIENTS, openedAt: now, deadlineAt: now + 60_000, received: [] } as unknown as RoundRecord;
  const clients = new Map(CLIENTS.map((c) => [c, new SecAggClient({ clientId: c })]));
  const request = async (stage: number, c: string): Promise<object> => {
    const doc = await store.get(storeKey(...relayKeyParts('t1', 1, stage, c, SECAGG_SERVER_PARTY)));
    assert.ok(doc, `a stage-${stage} request for ${c}`);
    return decodeSecAggMessage(Buffer.from((JSON.parse(doc.value) as RelayEntry).payload, 'base64'), STAGES[stage]!);
  };
  const respond = async (stage: number, c: string, msg: object): Promise<void> => {
    const entry: RelayEntry = { from: c, to: SECAGG_SERVER_PARTY, stage, payload: Buffer.from(encodeSecAggMessage(msg)).toString('base64') };
    await store.put(storeKey(...relayKeyParts('t1', 1, stage, SECAGG_SERVER_PARTY, c)), JSON.stringify(entry));
  };
  try {
    const first = driver();
    r = { ...r, ...first.plan(task, r, L) };
    await first.sendSetup(r);
    for (const c of CLIENTS) await respond(0, c, clients.get(c)!.setup((await request(0, c)) as never));
    let step = await driver().advanceSetup(task, r);
    assert.equal(step.kind, 'update');
    r = (step as { round: RoundRecord }).round;
    assert.deepEqual(r.secagg!.joined, CLIENTS);
    for (const c of CLIENTS) await respond(1, c, await clients.get(c)!.shareKeys((await request(1, c)) as never));
    step = await driver().advanceSetup(task, r);
    r = (step as { round: RoundRecord }).round;
    assert.equal(r.secagg!.stage, 'collect-masked');
    // d drops after sharing keys; the workers' part (the masked sum) is done here.
    const survivors = ['a', 'b', 'c'];
    const sum = new Uint32Array(L);
    const plain = new Float64Array(L);
    for (const [i, c] of survivors.entries()) {
      const u = new Float32Array(L).map((_, j) => Math.sin(j + i) * 0.01);
      u.forEach((x, j) => (plain[j]! += x));
      addInto(sum, clients.get(c)!.maskInput((await request(2, c)) as never, u).maskedVector!);
    }
    r = { ...r, received: survivors.map((tenant) => ({ tenant })) } as unknown as RoundRecord;
    step = await driver().closeCollection(task, r);
    r = (step as { round: RoundRecord }).round;
    assert.deepEqual(r.secagg!.survivors, survivors);
    for (const c of survivors) await respond(3, c, clients.get(c)!.unmask((await request(3, c)) as never));
    step = await driver().advanceUnmask(r);
    assert.equal(step.kind, 'unmasked');
    const plan = decodePlan((await store.get(secaggPlanKey('t1', 1, 1)))!.value);
    const decoded = unmaskAndDecodeShard({ plan, maskedSum: sum, offset: 0 });
    const bound = quantizationErrorBound(plan.encoding, 3) + 1e-6;
    for (let j = 0; j < L; j++) assert.ok(Math.abs(decoded[j]! - plain[j]!) <= bound, `coordinate ${j}: ${decoded[j]} vs ${plain[j]}`);
    await driver().cleanup(r);
    assert.equal(await store.get(secaggPlanKey('t1', 1, 1)), undefined);
    assert.deepEqual(await store.list(storeKey('gateway', 'secagg', '')), []);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('groups: each group is its own instance, the partition survives a coordinator restart at every stage, and a group below its threshold drops out alone', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedmm-secagg-groups-'));
  const store = new SqliteStore(join(dir, 'store.db'));
  const log = createLogger({ test: 'secagg-driver' }, 'error');
  const driver = (): SecAggDriver => new SecAggDriver(store, async (w) => { assert.ok(await store.atomic([], w)); }, log);
  const members = ['a', 'b', 'c', 'd', 'e', 'f'];
  const task = { taskId: 't2', roundDeadlineSeconds: 60, privacy: { clipNorm: 1, secaggNumShares: 0, secaggThreshold: 2, secaggGroupSize: 3 } } as unknown as TaskRecord;
  const now = Date.now();
  let r = { taskId: 't2', number: 1, attempt: 1, selected: members, openedAt: now, deadlineAt: now + 60_000, received: [] } as unknown as RoundRecord;
  const clients = new Map(members.map((c) => [c, new SecAggClient({ clientId: c })]));
  const request = async (stage: number, c: string): Promise<object> => {
    const doc = await store.get(storeKey(...relayKeyParts('t2', 1, stage, c, SECAGG_SERVER_PARTY)));
    assert.ok(doc, `a stage-${stage} request for ${c}`);
    return decodeSecAggMessage(Buffer.from((JSON.parse(doc.value) as RelayEntry).payload, 'base64'), STAGES[stage]!);
  };
  const respond = async (stage: number, c: string, msg: object): Promise<void> => {
    const entry: RelayEntry = { from: c, to: SECAGG_SERVER_PARTY, stage, payload: Buffer.from(encodeSecAggMessage(msg)).toString('base64') };
    await store.put(storeKey(...relayKeyParts('t2', 1, stage, SECAGG_SERVER_PARTY, c)), JSON.stringify(entry));
  };
  const step = (s: SecAggStep): RoundRecord => {
    assert.ok(s.kind === 'update' || s.kind === 'unmasked', `a step that moves the round, got ${JSON.stringify(s)}`);
    return s.round;
  };
  try {
    const first = driver();
    r = { ...r, ...first.plan(task, r, L) };
    assert.equal(r.secagg, undefined);
    const partition = r.secaggGroups!.map((g) => ({ group: g.group, participants: g.participants }));
    assert.deepEqual(partition.map((g) => g.group), ['g1', 'g2']);
    assert.deepEqual(partition.flatMap((g) => g.participants).sort(), members);
    assert.ok(partition.every((g) => g.participants.length === 3));
    // Every group runs its own instance: its own seed, and a setup request naming only its members.
    assert.notEqual(r.secaggGroups![0]!.roundSeed, r.secaggGroups![1]!.roundSeed);
    await first.sendSetup(r);
    for (const g of partition) {
      for (const c of g.participants) assert.deepEqual(((await request(0, c)) as { config: { participants: string[] } }).config.participants, g.participants);
    }
    for (const c of members) await respond(0, c, clients.get(c)!.setup((await request(0, c)) as never));
    r = step(await driver().advanceSetup(task, r));
    for (const c of members) await respond(1, c, await clients.get(c)!.shareKeys((await request(1, c)) as never));
    r = step(await driver().advanceSetup(task, r));
    assert.ok(r.secaggGroups!.every((g) => g.stage === 'collect-masked'));
    assert.deepEqual(r.secaggGroups!.map((g) => ({ group: g.group, participants: g.participants })), partition);
    // In g1 only one member uploads (below threshold 2); g2 loses one of three.
    const g1 = partition[0]!;
    const g2 = partition[1]!;
    const uploaders = [g1.participants[0]!, g2.participants[0]!, g2.participants[1]!];
    const sums = new Map<string, Uint32Array>([['g1', new Uint32Array(L)], ['g2', new Uint32Array(L)]]);
    const plain = new Float64Array(L);
    for (const [i, c] of uploaders.entries()) {
      const u = new Float32Array(L).map((_, j) => Math.cos(j + 3 * i) * 0.01);
      const group = g1.participants.includes(c) ? 'g1' : 'g2';
      if (group === 'g2') u.forEach((x, j) => (plain[j]! += x));
      addInto(sums.get(group)!, clients.get(c)!.maskInput((await request(2, c)) as never, u).maskedVector!);
    }
    r = { ...r, received: uploaders.map((tenant) => ({ tenant })) } as unknown as RoundRecord;
    r = step(await driver().closeCollection(task, r));
    const [s1, s2] = r.secaggGroups!;
    assert.equal(s1!.stage, 'failed');
    assert.match(s1!.failure!, /below threshold 2/);
    assert.equal(s2!.stage, 'unmask');
    assert.deepEqual(s2!.survivors, [g2.participants[0], g2.participants[1]]);
    for (const c of s2!.survivors) await respond(3, c, clients.get(c)!.unmask((await request(3, c)) as never));
    const done = await driver().advanceUnmask(r);
    assert.equal(done.kind, 'unmasked');
    r = step(done);
    assert.deepEqual(unmaskedSurvivors(r), s2!.survivors);
    assert.equal(await store.get(secaggPlanKey('t2', 1, 1, 'g1')), undefined);
    const plan = decodePlan((await store.get(secaggPlanKey('t2', 1, 1, 'g2')))!.value);
    const decoded = unmaskAndDecodeShard({ plan, maskedSum: sums.get('g2')!, offset: 0 });
    const bound = quantizationErrorBound(plan.encoding, 2) + 1e-6;
    for (let j = 0; j < L; j++) assert.ok(Math.abs(decoded[j]! - plain[j]!) <= bound, `coordinate ${j}: ${decoded[j]} vs ${plain[j]}`);
    await driver().cleanup(r);
    assert.deepEqual(await store.list(storeKey('aggregator', 'secagg-plan', '')), []);
    assert.deepEqual(await store.list(storeKey('aggregator', 'secagg', '')), []);
    assert.deepEqual(await store.list(storeKey('gateway', 'secagg', '')), []);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('groups: when every group falls short the round fails with each group\'s reason', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedmm-secagg-groups-'));
  const store = new SqliteStore(join(dir, 'store.db'));
  const log = createLogger({ test: 'secagg-driver' }, 'error');
  const d = new SecAggDriver(store, async (w) => { assert.ok(await store.atomic([], w)); }, log);
  const task = { taskId: 't3', roundDeadlineSeconds: 60, privacy: { clipNorm: 1, secaggNumShares: 0, secaggThreshold: 2, secaggGroupSize: 2 } } as unknown as TaskRecord;
  const now = Date.now();
  let r = { taskId: 't3', number: 1, attempt: 1, selected: ['a', 'b', 'c', 'd'], openedAt: now, deadlineAt: now + 60_000, received: [] } as unknown as RoundRecord;
  try {
    r = { ...r, ...d.plan(task, r, L) };
    await d.sendSetup(r);
    // Nobody answers stage 0 by its sub-deadline.
    const s = await d.advanceSetup(task, r, now + 61_000);
    assert.equal(s.kind, 'fail');
    assert.match((s as { reason: string }).reason, /^secure aggregation failed: every group fell short: g1: .*; g2: .*/);
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
