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
  companies: { name: string; privacy?: { epsilon: number; delta: number; samplingRate: number; noiseMultiplier: number; steps: number }; contribution?: { value: number; rewardShare: number; tier: string }; localOnly: Setting; federated: Setting; centralized: Setting; personalized: Setting; baseOnly: Setting; gain: number; cost: { bytesSent: number; bytesReceived: number; trainingSeconds: number; roundsJoined: number } }[];
  rounds: { number: number; received: string[]; versionId: string; accuracy: Record<string, number>; epsilon?: Record<string, number>; contributions?: Record<string, number> }[];
  privacy: { mode: string; noiseMultiplier?: number; clipNorm?: number; samplingRate?: number; localSteps?: number };
  contributionMethod?: string;
  contributionUtility?: string;
  model: { finalVersionId: string };
  bytes: { up: number; down: number };
  summary: { everyCompanyGains: unknown };
}

describe('fedmm demo, scaled down', { timeout: 240_000 }, () => {
  test('three company agents over mTLS run DP-SGD for two rounds and the report holds every figure, epsilon and contributions', async () => {
    const out = tempDir('demo');
    const companies = ['gridco', 'homesafe', 'smallcity'];
    const { code, output } = await runCli([
      'demo', '--out', out, '--rounds', '2', '--epochs', '1', '--companies', companies.join(','),
      '--train-size', '32', '--test-size', '24', '--public-size', '96', '--pretrain-epochs', '2', '--personal-epochs', '1', '--validation-size', '16', '--privacy', 'record',
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

    // Record-level DP: every company spent epsilon, composed over both rounds.
    assert.equal(report.privacy.mode, 'record');
    assert.ok(report.privacy.samplingRate! > 0 && report.privacy.localSteps! > 0);
    for (const c of report.companies) {
      assert.ok(c.privacy, `${c.name} has a privacy spend`);
      assert.ok(c.privacy.epsilon > 0 && Number.isFinite(c.privacy.epsilon), `${c.name} epsilon ${c.privacy.epsilon}`);
      assert.ok(c.privacy.samplingRate <= report.privacy.samplingRate!, `${c.name} sampled no more than reserved`);
      assert.ok(c.privacy.steps > 0 && c.privacy.steps <= 2 * report.privacy.localSteps!);
      assert.equal(c.privacy.noiseMultiplier, report.privacy.noiseMultiplier);
      const [r1, r2] = [report.rounds[0]!.epsilon?.[c.name], report.rounds[1]!.epsilon?.[c.name]];
      assert.ok(r1 !== undefined && r2 !== undefined && r1 < r2, `${c.name} epsilon grows over the rounds: ${r1}, ${r2}`);
      assert.ok(Math.abs(r2 - c.privacy.epsilon) < 1e-9);
    }
    // Contributions come from the valuation service, scored by accuracy on the platform's validation set.
    assert.equal(report.contributionUtility, 'validation:accuracy');
    assert.equal(report.contributionMethod, 'exact');
    const shares = report.companies.map((c) => c.contribution?.rewardShare);
    assert.ok(shares.every(isShare), `reward shares ${JSON.stringify(shares)}`);
    for (const r of report.rounds) assert.deepEqual(Object.keys(r.contributions ?? {}).sort(), [...companies].sort(), `round ${r.number} has every company's value`);
    for (const c of report.companies) {
      const total = report.rounds.reduce((s, r) => s + r.contributions![c.name]!, 0);
      assert.ok(Math.abs(total - c.contribution!.value) < 1e-6, `${c.name}: cumulative value is the sum of its round values`);
    }

    const html = readFileSync(join(out, 'report.html'), 'utf8');
    assert.match(html, /<svg/);
    assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'the HTML is self-contained');
    for (const c of companies) assert.ok(html.includes(c));
    assert.match(html, /Privacy spent[\s\S]*cumulative ε per round/);
    assert.match(html, /contribution per round[\s\S]*cumulative contribution[\s\S]*reward share/);
    for (const c of companies) assert.ok(existsSync(join(out, 'logs', `${c}.log`)));

    // A second run reuses the data and the pretrained base; by default without DP, so it spends no epsilon.
    const again = await runCli(['demo', '--out', out, '--rounds', '1', '--epochs', '1', '--companies', 'gridco,homesafe', '--validation-size', '0',
      '--train-size', '32', '--test-size', '24', '--public-size', '96', '--pretrain-epochs', '2', '--personal-epochs', '1'], 200_000);
    assert.equal(again.code, 0, again.output.slice(-4000));
    assert.match(again.output, /reusing the cached base/);
    const plain = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ReportShape;
    assert.equal(plain.privacy.mode, 'none');
    assert.ok(plain.companies.every((c) => c.privacy === undefined));
    assert.equal(plain.contributionUtility, 'consensus-distance');
    assert.match(readFileSync(join(out, 'report.html'), 'utf8'), /no differential privacy/);
  });
});
