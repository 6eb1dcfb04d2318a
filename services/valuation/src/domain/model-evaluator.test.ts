import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { createLogger } from '@fedmm/core';
import { DEFAULT_COMPANIES, INCIDENT_CLASSES, loadSamples, synthesize } from '@fedmm/data';
import { createBaseModel, evaluate, initAdapters, initBackend, loadBase, saveBase } from '@fedmm/model';
import { toModelSamples } from '@fedmm/agent';
import { modelEvaluators, type VersionArtifact } from './model-evaluator.js';
import type { RoundView, TaskView } from './ports.js';

let dir: string | undefined;
after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('the model evaluator scores candidate adapters by accuracy on the task validation set', async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedmm-valuation-model-'));
  await initBackend('wasm');
  await synthesize({ outDir: dir, seed: 5, companies: [{ ...DEFAULT_COMPANIES[0]!, trainSize: 2, testSize: 24 }], publicSpec: null });
  const validation = join(dir, DEFAULT_COMPANIES[0]!.name, 'test');
  const base = createBaseModel({ numClasses: INCIDENT_CLASSES.length, dModel: 16, vocabSize: 64, patchSize: 8, sensorWindow: 8, mlpRatio: 2 }, 7);
  const stored = saveBase(base);
  const adapters = initAdapters(base, { rank: 2, alpha: 4, seed: 3 });
  const artifacts = new Map<string, VersionArtifact>([
    ['base-v', { kind: 'base', parentVersionId: '', tensors: stored.tensors, metadata: stored.metadata }],
    ['input-v', { kind: 'adapter', parentVersionId: 'base-v', tensors: adapters.tensors, metadata: { 'fedmm.lora.rank': '2', 'fedmm.lora.alpha': '4' } }],
  ]);
  const source = modelEvaluators({
    validationDir: (task) => (task === 'with-data' ? validation : undefined),
    artifact: (id) => Promise.resolve(artifacts.get(id)!),
    loadBase: (a) => loadBase({ tensors: a.tensors, metadata: { ...a.metadata } }),
    log: createLogger({}, 'error'),
  });
  const task = (taskId: string): TaskView => ({ taskId, modelId: 'm', members: [], termsJson: '', valuationMethod: '', secureAggregation: false, secaggThreshold: 0 });
  const round: RoundView = {
    number: 1, attempt: 1, state: 'published', received: [], inputVersionId: 'input-v', outputVersionId: 'out-v',
    layout: { tensors: [...adapters.tensors].map(([name, t]) => ({ name, shape: t.shape })) },
  };
  assert.equal(await source(task('without-data'), round), undefined, 'no validation set: the caller falls back');
  const found = await source(task('with-data'), round);
  assert.ok(found);
  assert.equal(found.metric, 'accuracy');

  const samples = toModelSamples((await loadSamples(validation)).samples, base.tokenizer);
  // Non-zero B (initAdapters starts B at zero), so the candidate really differs from the base.
  const params = new Map([...adapters.tensors].map(([n, t]) => [n, n.endsWith('lora_B') ? t.data.map((_, i) => Math.sin(i) * 0.8) : t.data]));
  const candidate = { rank: 2, alpha: 4, tensors: new Map([...adapters.tensors].map(([n, t]) => [n, { shape: t.shape, data: params.get(n)! }])) };
  const expected = evaluate(base, candidate, samples).accuracy;
  assert.equal(await found.evaluator(params), expected);
  // LoRA with B = 0 leaves the base unchanged: the candidate scores exactly as the base.
  const zeroB = new Map([...params].map(([n, d]) => [n, n.endsWith('lora_B') ? new Float32Array(d.length) : d]));
  assert.equal(await found.evaluator(zeroB), evaluate(base, undefined, samples).accuracy);
});
