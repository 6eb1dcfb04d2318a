import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '@fedmm/core';
import { hostService, type HostedService } from '@fedmm/service-kit';
import { RedisStore } from '@fedmm/store';
import { privacyModule } from './main.js';
import { PrivacyClient } from './client.js';
import { PrivacyLedger } from './domain/ledger.js';

// A dedicated Redis, so crashing it does not disturb other tests on the shared server.
const port = process.env['FEDMM_REDIS_PRIVACY_PORT'] ?? '6392';
const url = `redis://127.0.0.1:${port}`;
const script = join(dirname(fileURLToPath(import.meta.url)), '../../../deploy/local/redis.sh');
const redis = (cmd: string): void => {
  execFileSync('bash', [script, cmd], { env: { ...process.env, FEDMM_REDIS_PORT: port }, stdio: ['ignore', 'ignore', 'inherit'] });
};
const log = createLogger({}, 'error');
const env: NodeJS.ProcessEnv = { ...process.env, FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_BUS: 'embedded' };
const run = randomUUID().slice(0, 8);
const ev = (tenant: string, steps = 1): { tenant: string; samplingRate: number; noiseMultiplier: number; steps: number } => ({ tenant, samplingRate: 0.1, noiseMultiplier: 1.1, steps });

async function start(): Promise<{ store: RedisStore; hosted: HostedService; client: PrivacyClient; stop(): Promise<void> }> {
  const store = new RedisStore(url);
  const hosted = await hostService(privacyModule, env, { store, log });
  const client = new PrivacyClient(hosted.address);
  return { store, hosted, client, async stop() { client.close(); await hosted.stop(); await store.close(); } };
}

before(() => redis('start'));
after(() => redis('stop'));

test('budgets, the ledger and open reservations survive a service restart and a Redis crash', async () => {
  const [task, a, b] = [`task-${run}`, `a-${run}`, `b-${run}`];
  let svc = await start();
  await svc.client.raw.setBudget({ budget: { scope: 'tenant', id: a, epsilon: 5, delta: 1e-5, spentEpsilon: 0, reservedEpsilon: 0, accountant: 'rdp', explicit: true } });
  const r1 = await svc.client.reserve({ taskId: task, round: 1, attempt: 0, events: [ev(a), ev(b)] });
  await svc.client.commit(r1.reservationId);
  const open = await svc.client.reserve({ taskId: task, round: 2, attempt: 0, events: [ev(a, 3)] });
  const before = await svc.client.raw.getLedger({ taskId: task, tenant: '' });
  const budgetBefore = (await svc.client.raw.getBudget({ scope: 'tenant', id: a })).budget;

  // A new service instance on a new connection.
  await svc.stop();
  svc = await start();
  assert.deepEqual(await svc.client.raw.getLedger({ taskId: task, tenant: '' }), before);
  assert.deepEqual((await svc.client.raw.getBudget({ scope: 'tenant', id: a })).budget, budgetBefore);

  // SIGKILL Redis: only what AOF fsynced survives.
  await svc.stop();
  redis('crash');
  redis('start');
  svc = await start();
  try {
    assert.deepEqual(await svc.client.raw.getLedger({ taskId: task, tenant: '' }), before);
    assert.deepEqual((await svc.client.raw.getBudget({ scope: 'tenant', id: a })).budget, budgetBefore);
    // The reservation opened before the crash still holds its spend and can be committed.
    assert.deepEqual(await svc.client.reserve({ taskId: task, round: 2, attempt: 0, events: [ev(a, 3)] }), open);
    const eps = await svc.client.commit(open.reservationId);
    assert.ok(eps[a]! > before.epsilonByTenant[a]!);
  } finally {
    await svc.stop();
  }
});

test('commits report each tenant\'s committed epsilon in the task, also after a restart', async () => {
  const seen: Record<string, number> = {};
  const onSpent = (tenant: string, taskId: string, eps: number): void => {
    seen[`${taskId}/${tenant}`] = eps;
  };
  const [task, a] = [`gauge-${run}`, `g-${run}`];
  let store = new RedisStore(url);
  const ledger = new PrivacyLedger(store, { defaultDelta: 1e-5, onSpent }, log);
  const r = await ledger.reserve({ taskId: task, round: 0, attempt: 0, events: [ev(a, 4)] });
  assert.deepEqual(seen, {}, 'a reservation spends nothing yet');
  const eps = await ledger.commit(r.reservationId);
  assert.equal(seen[`${task}/${a}`], eps[a]);
  await store.close();

  delete seen[`${task}/${a}`];
  store = new RedisStore(url);
  try {
    await new PrivacyLedger(store, { defaultDelta: 1e-5, onSpent }, log).publishSpent();
    assert.equal(seen[`${task}/${a}`], eps[a]);
  } finally {
    await store.close();
  }
});
