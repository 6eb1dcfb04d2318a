import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { renderReportHtml } from './report-html.js';
import { summarize, type CompanyReport, type DemoReport } from './report.js';

function company(name: string, local: number, fed: number, extra: Partial<CompanyReport> = {}): CompanyReport {
  return {
    name, trainSamples: 100, testSamples: 50, modalities: ['image', 'text'],
    baseOnly: { accuracy: 0.5 }, localOnly: { accuracy: local, trainingSeconds: 1 }, federated: { accuracy: fed },
    personalized: { accuracy: fed, trainingSeconds: 1 }, centralized: { accuracy: 0.8 }, gain: fed - local,
    cost: { bytesSent: 1000, bytesReceived: 2000, trainingSeconds: 3, roundsJoined: 2 }, ...extra,
  };
}

function report(companies: CompanyReport[], extra: Partial<DemoReport> = {}, rounds: DemoReport['rounds'] = []): DemoReport {
  return {
    format: 'fedmm.demo-report', version: 1, generatedAt: '2026-01-01T00:00:00.000Z',
    settings: { seed: 7, rounds: 2, localEpochs: 1, batchSize: 32, lr: 0.003, rank: 8, alpha: 16, strategy: 'fedavg', personalEpochs: 2, pretrainEpochs: 2, companies: companies.map((c) => c.name), tls: 'mutual', backend: 'wasm' },
    model: { modelId: 'm', baseVersionId: 'm@1', initialVersionId: 'm@2', finalVersionId: 'm@4', publicAccuracy: 0.9, baseBytes: 1e6, adapterBytes: 1e5 },
    taskId: 't', companies, rounds, bytes: { up: 1, down: 2 }, summary: summarize(companies), timings: { total: 10 }, ...extra,
  };
}

const rounds = (eps: boolean): DemoReport['rounds'] => [1, 2].map((n) => ({
  number: n, attempt: 1, versionId: `m@${n + 2}`, seconds: 3, received: ['alpha', 'beta'], dropped: [], accuracy: { alpha: 0.7, beta: 0.6 }, meanAccuracy: 0.65, bytesUp: 10, bytesDown: 20,
  contributions: { alpha: 0.02 * n, beta: -0.01 },
  ...(eps ? { epsilon: { alpha: 2 * n, beta: 2.1 * n } } : {}),
}));

describe('renderReportHtml', () => {
  test('shows epsilon per company and contributions with shares and tiers', () => {
    const html = renderReportHtml(report([
      company('alpha', 0.6, 0.7, { privacy: { epsilon: 4, delta: 1e-5, samplingRate: 0.25, noiseMultiplier: 1, steps: 20 }, contribution: { value: 0.06, rewardShare: 1, tier: 'member' } }),
      company('beta', 0.5, 0.6, { privacy: { epsilon: 4.2, delta: 1e-5, samplingRate: 0.24, noiseMultiplier: 1, steps: 20 }, contribution: { value: -0.02, rewardShare: 0, tier: 'member' } }),
    ], { privacy: { mode: 'record', accountant: 'rdp', delta: 1e-5, noiseMultiplier: 1, clipNorm: 0.25, samplingRate: 0.25, localSteps: 10 }, contributionMethod: 'exact', contributionUtility: 'validation:accuracy' }, rounds(true)));
    assert.match(html, /Record-level DP/);
    assert.match(html, /<span>privacy spent<\/span><b>ε 4\.2<\/b>/, 'the summary card shows the largest epsilon');
    assert.match(html, /<b>4\.00<\/b>[\s\S]*<b>4\.20<\/b>/, 'the epsilon table lists both companies');
    assert.match(html, /ε 4\.20/, 'a bar per company');
    assert.match(html, /cumulative ε per round/);
    assert.match(html, /Exact Shapley/);
    assert.match(html, /contribution per round[\s\S]*cumulative contribution/);
    assert.match(html, /\+6\.00 pts[\s\S]*<b>100\.0%<\/b>[\s\S]*member/, 'accuracy values in points, shares and tiers');
    assert.match(html, /-2\.00 pts/);
    assert.doesNotMatch(html, /NaN|undefined|Infinity/);
  });

  test('says why there is no epsilon and no contribution', () => {
    const html = renderReportHtml(report([company('alpha', 0.6, 0.7), company('beta', 0.5, 0.6)], { privacy: { mode: 'none', accountant: 'rdp', delta: 1e-5 } }, rounds(false)));
    assert.match(html, /no differential privacy/);
    assert.match(html, /<b>no DP<\/b>/);
    assert.match(html, /reported no contributions/);
    assert.doesNotMatch(html, /NaN|undefined/);
  });
});
