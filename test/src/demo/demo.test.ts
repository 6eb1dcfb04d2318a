import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../support/env.js';

const BIN = fileURLToPath(new URL('../../../bin/fedmm.js', import.meta.url));

/** Runs the CLI to completion; resolves with its exit code and combined output. */
function runCli(args: string[], timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FEDMM_LOG_LEVEL: 'warn' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

const isShare = (x: unknown): boolean => typeof x === 'number' && x >= 0 && x <= 1;

interface Setting { accuracy: number }
interface ReportShape {
  format: string;
  companies: { name: string; localOnly: Setting; federated: Setting; centralized: Setting; personalized: Setting; baseOnly: Setting; gain: number; cost: { bytesSent: number; bytesReceived: number; trainingSeconds: number; roundsJoined: number } }[];
  rounds: { number: number; received: string[]; versionId: string; accuracy: Record<string, number> }[];
  model: { finalVersionId: string };
  bytes: { up: number; down: number };
  summary: { everyCompanyGains: unknown };
}

describe('fedmm demo, scaled down', { timeout: 240_000 }, () => {
  test('three company agents over mTLS publish two rounds and the report holds every figure', async () => {
    const out = tempDir('demo');
    const companies = ['gridco', 'homesafe', 'smallcity'];
    const { code, output } = await runCli([
      'demo', '--out', out, '--rounds', '2', '--epochs', '1', '--companies', companies.join(','),
      '--train-size', '32', '--test-size', '24', '--public-size', '96', '--pretrain-epochs', '2', '--personal-epochs', '1',
    ], 220_000);
    assert.equal(code, 0, output.slice(-4000));
    assert.match(output, /round {2}2 {3}published/);
    assert.match(output, /\[gridco +\] /, 'agent lines are printed with their company prefix');

    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ReportShape;
    assert.equal(report.format, 'fedmm.demo-report');
    assert.deepEqual(report.companies.map((c) => c.name), companies);
    for (const c of report.companies) {
      for (const k of ['localOnly', 'federated', 'centralized', 'personalized', 'baseOnly'] as const) assert.ok(isShare(c[k].accuracy), `${c.name}.${k}.accuracy = ${c[k].accuracy}`);
      assert.ok(c.cost.bytesSent > 0, `${c.name} sent bytes`);
      assert.ok(c.cost.bytesReceived > 0, `${c.name} received bytes`);
      assert.ok(c.cost.trainingSeconds > 0, `${c.name} trained`);
      assert.equal(c.cost.roundsJoined, 2);
      assert.equal(c.gain, Math.max(c.federated.accuracy, c.personalized.accuracy) - c.localOnly.accuracy);
    }
    assert.equal(report.rounds.length, 2);
    const versions = new Set<string>();
    for (const [i, r] of report.rounds.entries()) {
      assert.equal(r.number, i + 1);
      assert.deepEqual([...r.received].sort(), [...companies].sort());
      assert.match(r.versionId, /\S/);
      versions.add(r.versionId);
      for (const c of companies) assert.ok(isShare(r.accuracy[c]));
    }
    assert.equal(versions.size, 2, 'each round published its own version');
    assert.equal(report.model.finalVersionId, report.rounds[1]!.versionId);
    assert.equal(report.bytes.up, report.companies.reduce((s, c) => s + c.cost.bytesSent, 0));
    assert.ok(report.bytes.down > 0);
    assert.equal(typeof report.summary.everyCompanyGains, 'boolean');

    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /<svg/);
    assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'the HTML is self-contained');
    for (const c of companies) assert.ok(html.includes(c));
    for (const c of companies) assert.ok(existsSync(join(out, 'logs', `${c}.log`)));

    // A second run reuses the data and the pretrained base.
    const again = await runCli(['demo', '--out', out, '--rounds', '1', '--epochs', '1', '--companies', 'gridco,homesafe',
      '--train-size', '32', '--test-size', '24', '--public-size', '96', '--pretrain-epochs', '2', '--personal-epochs', '1'], 200_000);
    assert.equal(again.code, 0, again.output.slice(-4000));
    assert.match(again.output, /reusing the cached base/);
  });
});
