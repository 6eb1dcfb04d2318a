import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createLogger } from '@fedmm/core';
import { epsilonFor, planNoise } from '@fedmm/dp';
import { privacy as pb } from '@fedmm/proto';
import { createRpcClient, hostService, type HostedService, type RpcClient } from '@fedmm/service-kit';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisStore, SqliteStore, type Store } from '@fedmm/store';
import { composedEpsilon } from './domain/accounting.js';
import { privacyModule } from './main.js';
import { PrivacyClient } from './client.js';

const redisUrl = process.env['FEDMM_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ ...process.env, FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_BUS: 'embedded', ...extra });
const log = createLogger({}, 'error');
const delta = 1e-5;
const run = randomUUID().slice(0, 8);
let seq = 0;
const uid = (what: string): string => `${what}-${run}-${++seq}`;
const round = (tenant: string, over: Partial<pb.MechanismEvent> = {}): pb.MechanismEvent => ({ tenant, samplingRate: 0.1, noiseMultiplier: 1.1, steps: 1, ...over });
const epsOfRounds = (n: number, ev: Partial<pb.MechanismEvent> = {}): number => composedEpsilon([{ ...round('x', ev), steps: n * (ev.steps ?? 1) }], delta, 'rdp');
/** A budget that fits exactly n rounds of `round()` and not n + 1. */
const budgetFor = (n: number): number => (epsOfRounds(n) + epsOfRounds(n + 1)) / 2;

// One suite for each store the service runs on: Redis in production, SQLite in the embedded platform.
const sqliteDir = mkdtempSync(join(tmpdir(), 'fedmm-privacy-'));
const stores: [string, () => Store][] = [
  ['Redis', () => new RedisStore(redisUrl)],
  ['SQLite', () => new SqliteStore(join(sqliteDir, 'privacy.db'))],
];
after(() => rmSync(sqliteDir, { recursive: true, force: true }));

for (const [storeName, openStore] of stores) describe(`privacy service over gRPC on ${storeName}`, () => {
  let store: Store;
  let hosted: HostedService;
  let rpc: RpcClient<typeof pb.PrivacyServiceService>;
  let client: PrivacyClient;

  before(async () => {
    store = openStore();
    hosted = await hostService(privacyModule, env(), { store, log });
    rpc = createRpcClient(pb.PrivacyServiceService, hosted.address);
    client = new PrivacyClient(hosted.address);
  });
  after(async () => {
    rpc.close();
    client.close();
    await hosted.stop();
    await store.close();
  });

  const setBudget = (scope: string, id: string, epsilon: number, accountant = 'rdp'): Promise<pb.SetBudgetResponse> =>
    rpc.setBudget({ budget: { scope, id, epsilon, delta, spentEpsilon: 0, reservedEpsilon: 0, accountant, explicit: true } });

  test('budgets are set and read back; bad requests are INVALID_ARGUMENT', async () => {
    const tenant = uid('acme');
    const set = await setBudget('tenant', tenant, 4);
    assert.equal(set.budget?.epsilon, 4);
    assert.equal(set.budget?.explicit, true);
    const got = (await rpc.getBudget({ scope: 'tenant', id: tenant })).budget!;
    assert.deepEqual({ e: got.epsilon, d: got.delta, s: got.spentEpsilon, a: got.accountant }, { e: 4, d: delta, s: 0, a: 'rdp' });
    await assert.rejects(rpc.getBudget({ scope: 'company', id: tenant }), { code: 'INVALID_ARGUMENT', message: /scope must be "tenant" or "task"/ });
    await assert.rejects(setBudget('tenant', tenant, -1), { code: 'INVALID_ARGUMENT', message: /must be a finite number > 0/ });
    await assert.rejects(setBudget('task', 'no:colons', 1), { code: 'INVALID_ARGUMENT', message: /task id/ });
  });

  test('reserve then commit spends the composed epsilon; the ledger and the budgets show it', async () => {
    const [task, a, b] = [uid('task'), uid('a'), uid('b')];
    await setBudget('tenant', a, 10);
    const r1 = await client.reserve({ taskId: task, round: 1, attempt: 0, events: [round(a), round(b, { samplingRate: 0.2 })] });
    assert.equal(r1.reservationId, `${task}/1/0`);
    assert.ok(Math.abs(r1.epsilonByTenant[a]! - epsOfRounds(1)) < 1e-9);
    const held = (await rpc.getBudget({ scope: 'tenant', id: a })).budget!;
    assert.equal(held.spentEpsilon, 0);
    assert.ok(Math.abs(held.reservedEpsilon - epsOfRounds(1)) < 1e-9);

    const c1 = await client.commit(r1.reservationId);
    assert.ok(Math.abs(c1[a]! - epsOfRounds(1)) < 1e-9);
    const r2 = await client.reserve({ taskId: task, round: 2, attempt: 0, events: [round(a), round(b, { samplingRate: 0.2 })] });
    const c2 = await client.commit(r2.reservationId);
    assert.ok(Math.abs(c2[a]! - epsOfRounds(2)) < 1e-9, 'two rounds compose');
    assert.ok(c2[a]! < 2 * c1[a]!, 'composition is tighter than adding epsilons');
    assert.ok(Math.abs(c2[b]! - composedEpsilon([round(b, { samplingRate: 0.2, steps: 2 })], delta, 'rdp')) < 1e-9);

    const spent = (await rpc.getBudget({ scope: 'tenant', id: a })).budget!;
    assert.ok(Math.abs(spent.spentEpsilon - epsOfRounds(2)) < 1e-9);
    assert.equal(spent.reservedEpsilon, 0);
    const taskBudget = (await rpc.getBudget({ scope: 'task', id: task })).budget!;
    assert.ok(Math.abs(taskBudget.spentEpsilon - c2[b]!) < 1e-9, 'task epsilon is the worst tenant');
    assert.equal(taskBudget.explicit, false);
    assert.equal(taskBudget.epsilon, Number.POSITIVE_INFINITY);

    const ledger = await rpc.getLedger({ taskId: task, tenant: '' });
    assert.deepEqual(ledger.entries.map((e) => `${e.round}:${e.tenant === a ? 'a' : 'b'}:${e.state}`), ['1:a:reserved', '1:b:reserved', '1:a:committed', '1:b:committed', '2:a:reserved', '2:b:reserved', '2:a:committed', '2:b:committed']);
    const last = ledger.entries.at(-2)!;
    assert.ok(Math.abs(last.cumulativeEpsilon - epsOfRounds(2)) < 1e-9 && Math.abs(last.epsilon - epsOfRounds(1)) < 1e-9);
    assert.deepEqual(last.events, [round(a)]);
    assert.deepEqual(Object.keys(ledger.epsilonByTenant).sort(), [a, b].sort());
    assert.ok(Math.abs(ledger.epsilonByTenant[a]! - epsOfRounds(2)) < 1e-9);
    const mine = await rpc.getLedger({ taskId: '', tenant: a });
    assert.equal(mine.entries.length, 4);
    assert.deepEqual(Object.keys(mine.epsilonByTenant), [a]);
    assert.deepEqual(await client.spentByTenant(task), ledger.epsilonByTenant);
  });

  test('a retried Reserve returns the same reservation and holds the spend once', async () => {
    const [task, a] = [uid('task'), uid('a')];
    await setBudget('tenant', a, budgetFor(2));
    const req = { taskId: task, round: 7, attempt: 1, events: [round(a)] };
    const first = await client.reserve(req);
    const again = await client.reserve(req);
    assert.deepEqual(again, first);
    assert.ok(Math.abs((await rpc.getBudget({ scope: 'tenant', id: a })).budget!.reservedEpsilon - epsOfRounds(1)) < 1e-9);
    await assert.rejects(client.reserve({ ...req, events: [round(a, { steps: 2 })] }), { code: 'FAILED_PRECONDITION', message: /already exists with other events.*new attempt/ });
    await client.commit(first.reservationId);
    assert.deepEqual(await client.reserve(req), first, 'a retry after the commit still answers the same reservation');
    assert.deepEqual(await client.commit(first.reservationId), await client.commit(first.reservationId), 'commit is idempotent');
  });

  test('a reservation over a budget is RESOURCE_EXHAUSTED and names the budget, the epsilon and the tenant', async () => {
    const [task, a] = [uid('task'), uid('a')];
    const budget = budgetFor(2);
    await setBudget('tenant', a, budget);
    for (const r of [1, 2]) await client.commit((await client.reserve({ taskId: task, round: r, attempt: 0, events: [round(a)] })).reservationId);
    const err = await client.reserve({ taskId: task, round: 3, attempt: 0, events: [round(a)] }).then(() => undefined, (e: unknown) => e as Error & { code: string });
    assert.equal(err?.code, 'RESOURCE_EXHAUSTED');
    assert.match(err.message, new RegExp(`round 3 .*task ${task} would bring tenant ${a} to epsilon ${Number(epsOfRounds(3).toPrecision(6))}`));
    assert.match(err.message, new RegExp(`above its budget of ${Number(budget.toPrecision(6))}`));
    assert.equal((await rpc.getBudget({ scope: 'tenant', id: a })).budget!.reservedEpsilon, 0, 'a refused reservation holds nothing');
    assert.equal((await rpc.getLedger({ taskId: task, tenant: '' })).entries.length, 4, 'and leaves no ledger entry');
  });

  test('a task budget bounds each tenant in the task (parallel), a tenant budget spans its tasks', async () => {
    const [t1, t2, a, b] = [uid('task'), uid('task'), uid('a'), uid('b')];
    await setBudget('task', t1, budgetFor(1));
    // Two tenants each at one round: the task is at one round, not two.
    await client.reserve({ taskId: t1, round: 1, attempt: 0, events: [round(a), round(b)] });
    await assert.rejects(client.reserve({ taskId: t1, round: 2, attempt: 0, events: [round(b)] }), { code: 'RESOURCE_EXHAUSTED', message: new RegExp(`task ${t1}`) });
    // Tenant a's budget covers both tasks.
    await setBudget('tenant', a, budgetFor(2));
    await client.reserve({ taskId: t2, round: 1, attempt: 0, events: [round(a)] });
    await assert.rejects(client.reserve({ taskId: t2, round: 2, attempt: 0, events: [round(a)] }), { code: 'RESOURCE_EXHAUSTED', message: new RegExp(`tenant ${a}`) });
  });

  test('a budget is enforced with its own accountant: PLD admits rounds that RDP would refuse', async () => {
    const [task, a, b] = [uid('task'), uid('a'), uid('b')];
    const ev = { samplingRate: 0.5, noiseMultiplier: 2 };
    const pld = (n: number): number => composedEpsilon([{ ...ev, steps: n }], delta, 'pld');
    const budget = (pld(2) + pld(3)) / 2;
    assert.ok(composedEpsilon([{ ...ev, steps: 2 }], delta, 'rdp') > budget, 'RDP alone would refuse the second round');
    await setBudget('task', task, budget, 'pld');
    // Client-level DP: both companies get the same event each round.
    for (const r of [1, 2]) await client.reserve({ taskId: task, round: r, attempt: 0, events: [round(a, ev), round(b, ev)] });
    await assert.rejects(client.reserve({ taskId: task, round: 3, attempt: 0, events: [round(a, ev), round(b, ev)] }), { code: 'RESOURCE_EXHAUSTED', message: /\(pld\)/ });
    const view = (await rpc.getBudget({ scope: 'task', id: task })).budget!;
    assert.equal(view.accountant, 'pld');
    assert.ok(Math.abs(view.reservedEpsilon - pld(2)) < 1e-9);
  });

  test('commit may report less than reserved, never more; unknown and released reservations are refused clearly', async () => {
    const [task, a, b] = [uid('task'), uid('a'), uid('b')];
    const r = await client.reserve({ taskId: task, round: 1, attempt: 0, events: [round(a, { steps: 10 }), round(b, { steps: 10 })] });
    await assert.rejects(client.commit(r.reservationId, [round(a, { steps: 11 })]), { code: 'FAILED_PRECONDITION', message: /exceeds the reservation for tenant/ });
    await assert.rejects(client.commit(r.reservationId, [round(a, { noiseMultiplier: 1.0 })]), { code: 'FAILED_PRECONDITION', message: /exceeds the reservation/ });
    await assert.rejects(client.commit(r.reservationId, [round(uid('c'))]), { code: 'FAILED_PRECONDITION', message: /does not cover/ });
    // b dropped out; a ran 6 of 10 steps.
    const eps = await client.commit(r.reservationId, [round(a, { steps: 6 })]);
    assert.ok(Math.abs(eps[a]! - epsOfRounds(6)) < 1e-9);
    assert.equal(eps[b], 0);
    assert.equal((await rpc.getBudget({ scope: 'tenant', id: b })).budget!.spentEpsilon, 0);
    await assert.rejects(client.commit(r.reservationId, [round(a, { steps: 5 })]), { code: 'FAILED_PRECONDITION', message: /already committed/ });
    await assert.rejects(client.release(r.reservationId, 'late failure'), { code: 'FAILED_PRECONDITION', message: /is committed/ });

    await assert.rejects(client.commit(`${task}/99/0`), { code: 'NOT_FOUND', message: /does not exist; reserve the round first/ });
    await assert.rejects(client.commit('garbage'), { code: 'NOT_FOUND', message: /<task>\/<round>\/<attempt>/ });

    const r2 = await client.reserve({ taskId: task, round: 2, attempt: 0, events: [round(a)] });
    await client.release(r2.reservationId, 'too few clients');
    await client.release(r2.reservationId, 'too few clients');
    assert.equal((await rpc.getBudget({ scope: 'tenant', id: a })).budget!.reservedEpsilon, 0, 'release frees the hold');
    await assert.rejects(client.commit(r2.reservationId), { code: 'FAILED_PRECONDITION', message: /was released \(too few clients\).*new attempt/ });
    await assert.rejects(client.reserve({ taskId: task, round: 2, attempt: 0, events: [round(a)] }), { code: 'FAILED_PRECONDITION', message: /was released/ });
    await client.reserve({ taskId: task, round: 2, attempt: 1, events: [round(a)] });
    const entries = (await rpc.getLedger({ taskId: task, tenant: a })).entries.filter((e) => e.round === 2);
    assert.deepEqual(entries.map((e) => [e.attempt, e.state, e.reason]), [[0, 'reserved', ''], [0, 'released', 'too few clients'], [1, 'reserved', '']]);
  });

  test('events are validated', async () => {
    const task = uid('task');
    const bad: [Partial<pb.MechanismEvent>, RegExp][] = [
      [{ tenant: '' }, /names no tenant/],
      [{ samplingRate: 0 }, /sampling_rate must be in \(0, 1\]/],
      [{ samplingRate: 1.5 }, /sampling_rate/],
      [{ noiseMultiplier: 0 }, /noise_multiplier must be/],
      [{ steps: 0 }, /steps must be an integer >= 1/],
    ];
    for (const [over, msg] of bad) {
      await assert.rejects(client.reserve({ taskId: task, round: 1, attempt: 0, events: [round(uid('a'), over)] }), { code: 'INVALID_ARGUMENT', message: msg });
    }
    await assert.rejects(client.reserve({ taskId: task, round: 1, attempt: 0, events: [] }), { code: 'INVALID_ARGUMENT', message: /at least one mechanism event/ });
    await assert.rejects(client.reserve({ taskId: task, round: 1, attempt: 0, events: [round(uid('a'))], accountant: 'moments' as never }), { code: 'INVALID_ARGUMENT', message: /accountant/ });
  });

  test('many concurrent reservations on two replicas and two tasks never overspend a tenant budget', async () => {
    const secondStore = openStore();
    const second = await hostService(privacyModule, env(), { store: secondStore, log });
    const clients = [client, new PrivacyClient(second.address)];
    try {
      const [t1, t2, a, b] = [uid('task'), uid('task'), uid('a'), uid('b')];
      const fits = 13;
      await setBudget('tenant', a, budgetFor(fits));
      const results = await Promise.allSettled(
        Array.from({ length: 40 }, (_, i) =>
          clients[i % 2]!.reserve({ taskId: i % 4 < 2 ? t1 : t2, round: i, attempt: 0, events: [round(a), round(b)] })),
      );
      const ok = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      for (const r of refused) assert.equal((r.reason as { code: string }).code, 'RESOURCE_EXHAUSTED', String(r.reason));
      assert.equal(ok.length, fits, `exactly ${fits} of 40 reservations fit`);
      const view = (await rpc.getBudget({ scope: 'tenant', id: a })).budget!;
      assert.ok(view.spentEpsilon + view.reservedEpsilon <= view.epsilon, `held ${view.reservedEpsilon} within ${view.epsilon}`);
      assert.ok(Math.abs(view.reservedEpsilon - epsOfRounds(fits)) < 1e-9);
      const entries = [...(await rpc.getLedger({ taskId: t1, tenant: a })).entries, ...(await rpc.getLedger({ taskId: t2, tenant: a })).entries];
      assert.equal(entries.length, fits, 'one ledger entry per successful reservation');
      // Commits from both replicas at once keep the account consistent.
      await Promise.all(ok.map((r, i) => clients[i % 2]!.commit((r as PromiseFulfilledResult<{ reservationId: string }>).value.reservationId)));
      const after = (await rpc.getBudget({ scope: 'tenant', id: a })).budget!;
      assert.ok(Math.abs(after.spentEpsilon - epsOfRounds(fits)) < 1e-9 && after.reservedEpsilon === 0);
      assert.ok(after.spentEpsilon <= after.epsilon);
    } finally {
      clients[1]!.close();
      await second.stop();
      await secondStore.close();
    }
  });

  test('ComputeEpsilon and PlanNoise answer like the accountant library', async () => {
    const q = { samplingRate: 0.01, noiseMultiplier: 1.1, steps: 1000, delta };
    assert.equal((await rpc.computeEpsilon({ ...q, accountant: 'rdp' })).epsilon, epsilonFor(q));
    const sigma = (await rpc.planNoise({ epsilon: 2, delta, samplingRate: 0.01, steps: 1000, accountant: '' })).noiseMultiplier;
    assert.equal(sigma, planNoise({ epsilon: 2, delta, samplingRate: 0.01, steps: 1000 }));
    await assert.rejects(rpc.computeEpsilon({ ...q, delta: 0, accountant: 'rdp' }), { code: 'INVALID_ARGUMENT', message: /delta/ });
  });
});

describe('privacy service defaults', () => {
  test('without a budget spend is allowed and accounted; FEDMM_PRIVACY_DEFAULT_EPSILON caps it', async () => {
    const store = new RedisStore(redisUrl);
    const open = await hostService(privacyModule, env(), { store, log });
    const atDelta6 = (n: number): number => composedEpsilon([round('x', { steps: n })], 1e-6, 'rdp');
    const cap = (atDelta6(1) + atDelta6(2)) / 2;
    const capped = await hostService(privacyModule, env({ FEDMM_PRIVACY_DEFAULT_EPSILON: String(cap), FEDMM_PRIVACY_DEFAULT_DELTA: '1e-6' }), { store, log });
    const c1 = new PrivacyClient(open.address);
    const c2 = new PrivacyClient(capped.address);
    try {
      const [task, a] = [uid('task'), uid('a')];
      for (let r = 0; r < 5; r += 1) await c1.commit((await c1.reserve({ taskId: task, round: r, attempt: 0, events: [round(a)] })).reservationId);
      const view = (await c1.raw.getBudget({ scope: 'tenant', id: a })).budget!;
      assert.equal(view.epsilon, Number.POSITIVE_INFINITY);
      assert.ok(Math.abs(view.spentEpsilon - epsOfRounds(5)) < 1e-9);

      const [task2, b] = [uid('task'), uid('b')];
      const first = await c2.reserve({ taskId: task2, round: 0, attempt: 0, events: [round(b)] });
      assert.ok(Math.abs(first.epsilonByTenant[b]! - atDelta6(1)) < 1e-9, 'the default delta applies to new accounts');
      await assert.rejects(c2.reserve({ taskId: task2, round: 1, attempt: 0, events: [round(b)] }), { code: 'RESOURCE_EXHAUSTED', message: /service default budget \(FEDMM_PRIVACY_DEFAULT_EPSILON\)/ });
      await assert.rejects(hostService(privacyModule, env({ FEDMM_PRIVACY_DEFAULT_EPSILON: '-1' }), { store, log }), { code: 'INVALID_ARGUMENT', message: /FEDMM_PRIVACY_DEFAULT_EPSILON/ });
    } finally {
      c1.close();
      c2.close();
      await open.stop();
      await capped.stop();
      await store.close();
    }
  });
});
