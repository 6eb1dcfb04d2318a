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
import { SecAggDriver } from './driver.js';
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
