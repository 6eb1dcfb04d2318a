import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RegistryPort } from '../ports/index.js';
import { validateNewTask, type NewTask } from './task-validation.js';

const registry = { getVersion: async () => ({ versionId: 'm@1', modelId: 'm', number: 1, round: 0, layout: { tensors: [{ name: 'w', dtype: 'F32', shape: [4] }], fingerprint: 'x' } }) } as unknown as RegistryPort;

function secureTask(privacy: Partial<NewTask['privacy']>): NewTask {
  return {
    taskId: 't', modelId: 'm', baseVersionId: 'm@1', members: ['a', 'b', 'c', 'd'], rounds: 1,
    strategy: { name: 'fedavg', params: {}, clipNorm: 0 },
    privacy: { mode: 'none', noiseMultiplier: 0, targetEpsilon: 0, delta: 0, clipNorm: 1, accountant: 'rdp', secureAggregation: true, secaggThreshold: 2, secaggNumShares: 0, ...privacy },
    selection: { fraction: 1, minClients: 1, maxClients: 0 }, roundDeadlineSeconds: 60, maxUpdateNorm: 0, maxUpdateBytes: 0, termsJson: '', clientConfig: {}, valuationMethod: '',
  };
}

test('secagg_group_size: 0 keeps one group; a size is kept on the task', async () => {
  assert.equal((await validateNewTask(secureTask({}), registry)).privacy.secaggGroupSize, 0);
  assert.equal((await validateNewTask(secureTask({ secaggGroupSize: 3 }), registry)).privacy.secaggGroupSize, 3);
});

test('secagg_group_size below the threshold, too large for a complete graph, or without secure aggregation is refused with what to set', async () => {
  await assert.rejects(validateNewTask(secureTask({ secaggGroupSize: 2, secaggThreshold: 3 }), registry), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.match(e.message, /secagg_group_size 2 is below secagg_threshold 3: .*set secagg_group_size >= 3, or 0 for one group/);
    return true;
  });
  await assert.rejects(validateNewTask(secureTask({ secaggGroupSize: 4, secaggThreshold: 2 }), registry), /complete graph .* set secagg_threshold >= 3, secagg_group_size <= 3, or secagg_num_shares to an odd number k with 2 <= k <= 3/);
  assert.equal((await validateNewTask(secureTask({ secaggGroupSize: 4, secaggThreshold: 2, secaggNumShares: 3 }), registry)).privacy.secaggGroupSize, 4);
  await assert.rejects(validateNewTask(secureTask({ secaggGroupSize: 3, secureAggregation: false }), registry), /secagg_group_size 3 needs privacy.secure_aggregation = true/);
});
