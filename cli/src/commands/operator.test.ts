import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FedmmError, createLogger } from '@fedmm/core';
import { DEFAULT_COMPANIES, PUBLIC_SPEC, synthesize } from '@fedmm/data';
import { PkiFiles, initPkiDir } from '@fedmm/pki';
import { UsageError } from '../command.js';
import { startPlatform, type Platform } from '../platform.js';
import { runModel } from './model.js';
import { runRound } from './round.js';
import { runTask } from './task.js';

async function capture(fn: (write: (t: string) => void) => Promise<number>): Promise<string> {
  let out = '';
  const code = await fn((t) => (out += t));
  assert.equal(code, 0, out);
  return out;
}

describe('operator commands against the embedded platform', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedmm-operator-'));
  let platform: Platform;
  let reg: string;
  let agg: string;
  let adapterVersion = '';

  before(async () => {
    await synthesize({ outDir: join(dir, 'data'), seed: 3, companies: [{ ...DEFAULT_COMPANIES[0]!, trainSize: 8, testSize: 8 }], publicSpec: { ...PUBLIC_SPEC, trainSize: 48 } });
    const pki = join(dir, 'pki');
    await initPkiDir(pki);
    platform = await startPlatform({
      dataDir: join(dir, 'platform'),
      ports: { gateway: 0, registry: 0, aggregator: 0, privacy: 0, valuation: 0 },
      env: { FEDMM_TLS_CERT: join(pki, PkiFiles.serverCert), FEDMM_TLS_KEY: join(pki, PkiFiles.serverKey), FEDMM_TLS_CA: join(pki, PkiFiles.caCert) },
      log: createLogger({}, 'error'),
    });
    reg = platform.addressOf('registry');
    agg = platform.addressOf('aggregator');
  });

  after(async () => {
    await platform.stop();
  });

  test('model pretrain registers a base and initial adapters, cached for the next run; export-peft writes PEFT files', async () => {
    const args = ['pretrain', '--data', join(dir, 'data', 'public'), '--model-id', 'incidents', '--registry', reg, '--epochs', '1', '--out', join(dir, 'models')];
    const out = await capture((w) => runModel(args, w));
    assert.match(out, /pretrained in/);
    adapterVersion = /initial adapters (\S+)/.exec(out)?.[1] ?? '';
    assert.match(adapterVersion, /^incidents@/);
    const again = await capture((w) => runModel(args, w));
    assert.match(again, /reused cached base/);
    const peft = join(dir, 'peft');
    await capture((w) => runModel(['export-peft', adapterVersion, '--out', peft, '--registry', reg], w));
    const config = JSON.parse(readFileSync(join(peft, 'adapter_config.json'), 'utf8')) as { r: number; lora_alpha: number };
    assert.equal(config.r, 8);
    assert.equal(config.lora_alpha, 16);
    assert.ok(existsSync(join(peft, 'adapter_model.safetensors')));
    await assert.rejects(runModel(['pretrain', '--model-id', 'x'], () => undefined), UsageError);
  });

  test('task create, list and show; round start, list, show and cancel', async () => {
    assert.ok(adapterVersion, 'needs the pretrain test');
    const create = ['create', '--id', 'demo-task', '--model', 'incidents', '--base-version', adapterVersion, '--member', 'acme', '--member', 'bravo', '--rounds', '2', '--epochs', '3', '--lr', '0.005', '--addr', agg];
    let created = '';
    for (let i = 0; ; i++) {
      try {
        created = await capture((w) => runTask(create, w));
        break;
      } catch (e) {
        // The coordinator takes its lease a moment after start.
        if (i > 60 || !/leader|lease/i.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    assert.match(created, /created task demo-task/);
    assert.match(created, /local_epochs=3/);
    assert.match(created, /learning_rate=0\.005/);
    assert.match(await capture((w) => runTask(['list', '--addr', agg], w)), /demo-task\s+created\s+0\/2\s+incidents\s+fedavg\s+2/);
    assert.match(await capture((w) => runTask(['show', 'demo-task', '--addr', agg], w)), /members\s+acme, bravo/);
    assert.match(await capture((w) => runRound(['start', 'demo-task', '--addr', agg], w)), /opened round 1 of demo-task/);
    assert.match(await capture((w) => runRound(['list', 'demo-task', '--addr', agg], w)), /^1\s+1\s+open\s+0\/2/m);
    assert.match(await capture((w) => runRound(['show', 'demo-task', '1', '--addr', agg], w)), /selected\s+acme, bravo/);
    assert.match(await capture((w) => runRound(['cancel', 'demo-task', '1', '--reason', 'test over', '--addr', agg], w)), /round 1 of demo-task is failed/);
    await assert.rejects(runTask(['show', 'no-such-task', '--addr', agg], () => undefined), (e: unknown) => e instanceof FedmmError && e.code === 'NOT_FOUND');
    await assert.rejects(runRound(['show', 'demo-task', '--addr', agg], () => undefined), /name the round number/);
    await assert.rejects(runTask(['create', '--id', 'x', '--addr', agg], () => undefined), /--model is required/);
    await assert.rejects(runTask(['list', '--addr', '127.0.0.1:1'], () => undefined), /cannot reach the aggregator/);
  });
});
