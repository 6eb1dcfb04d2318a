import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createLogger } from '@fedmm/core';
import { epsilonFor, planNoise } from '@fedmm/dp';
import { PrivacyClient, privacyModule } from '@fedmm/privacy-service';
import { hostService, type HostedService } from '@fedmm/service-kit';
import { RedisStore } from '@fedmm/store';

const bin = join(dirname(fileURLToPath(import.meta.url)), '../../../bin/fedmm.js');
const exec = promisify(execFile);

// Asynchronous: the live subcommands call a service running in this process.
async function fedmm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('fedmm privacy, offline calculators', () => {
  test('epsilon prints one number, the accountant epsilon', async () => {
    const r = await fedmm(['privacy', 'epsilon', '--sampling-rate', '0.01', '--noise-multiplier', '1.1', '--steps', '1000', '--delta', '1e-5']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${epsilonFor({ samplingRate: 0.01, noiseMultiplier: 1.1, steps: 1000, delta: 1e-5 })}\n`);
  });

  test('plan prints one number, the calibrated noise multiplier', async () => {
    const r = await fedmm(['privacy', 'plan', '--epsilon', '2', '--delta', '1e-5', '--sampling-rate', '0.01', '--steps', '1000', '--accountant', 'rdp']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${planNoise({ epsilon: 2, delta: 1e-5, samplingRate: 0.01, steps: 1000 })}\n`);
  });

  test('bad or missing options are usage errors (exit 2)', async () => {
    const missing = await fedmm(['privacy', 'epsilon', '--sampling-rate', '0.01', '--steps', '10', '--delta', '1e-5']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--noise-multiplier is required/);
    const bad = await fedmm(['privacy', 'plan', '--epsilon', '2', '--delta', '1e-5', '--sampling-rate', '0.01', '--steps', '10', '--accountant', 'moments']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--accountant must be rdp or pld/);
  });
});

describe('fedmm privacy, live', () => {
  const log = createLogger({}, 'error');
  const run = randomUUID().slice(0, 8);
  let store: RedisStore;
  let hosted: HostedService;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    store = new RedisStore(process.env['FEDMM_REDIS_URL'] ?? 'redis://127.0.0.1:6379');
    hosted = await hostService(privacyModule, { ...process.env, FEDMM_GRPC_HOST: '127.0.0.1', FEDMM_GRPC_PORT: '0', FEDMM_BUS: 'embedded' }, { store, log });
    env = { FEDMM_PRIVACY_ADDR: hosted.address };
  });
  after(async () => {
    await hosted.stop();
    await store.close();
  });

  test('budget set and show, then the ledger with the spent epsilon per company', async () => {
    const [tenant, task] = [`cli-${run}`, `cli-task-${run}`];
    const set = await fedmm(['privacy', 'budget', 'set', 'tenant', tenant, '--epsilon', '6', '--delta', '1e-6'], env);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, new RegExp(`tenant ${tenant}\\n  budget      6\\n  delta       1e-6`));

    const client = new PrivacyClient(hosted.address);
    const r = await client.reserve({ taskId: task, round: 1, attempt: 0, events: [{ tenant, samplingRate: 0.1, noiseMultiplier: 1.1, steps: 3 }] });
    const eps = (await client.commit(r.reservationId))[tenant]!;
    client.close();

    const show = await fedmm(['privacy', 'budget', 'show', 'tenant', tenant, '--json'], env);
    assert.equal(show.code, 0, show.stderr);
    const b = JSON.parse(show.stdout) as { epsilon: number; spentEpsilon: number; explicit: boolean };
    assert.equal(b.epsilon, 6);
    assert.equal(b.explicit, true);
    assert.ok(b.spentEpsilon > 0);

    const ledger = await fedmm(['privacy', 'ledger', '--task', task], env);
    assert.equal(ledger.code, 0, ledger.stderr);
    assert.match(ledger.stdout, /TIME\s+TASK\s+ROUND\s+ATTEMPT\s+TENANT\s+STATE\s+EPSILON\s+CUMULATIVE\s+EVENTS/);
    assert.match(ledger.stdout, new RegExp(`${task}\\s+1\\s+0\\s+${tenant}\\s+committed`));
    assert.match(ledger.stdout, new RegExp(`committed epsilon per tenant in task ${task}:\\n  ${tenant}  ${Number(eps.toPrecision(6))}`));

    const unknown = await fedmm(['privacy', 'budget', 'show', 'task', `none-${run}`], env);
    assert.equal(unknown.code, 0, unknown.stderr);
    assert.match(unknown.stdout, /budget      unlimited \(service default\)/);
  });

  test('service errors are reported with their reason (exit 1)', async () => {
    const r = await fedmm(['privacy', 'budget', 'set', 'tenant', 'bad:id', '--epsilon', '1'], env);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /tenant id "bad:id" is not valid/);
    const down = await fedmm(['privacy', 'ledger', '--addr', '127.0.0.1:1'], env);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /fedmm privacy: .*127\.0\.0\.1:1/);
  });
});
