import { createHash } from 'node:crypto';
import { FedmmError } from '@fedmm/core';
import { createStrategy, type StrategyConfig } from '@fedmm/aggregation';
import { planNoise } from '@fedmm/dp';
import type { RegistryPort } from '../ports/index.js';
import type { PrivacySettings, SelectionSettings, TaskRecord } from './types.js';

const ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export interface NewTask {
  taskId: string;
  modelId: string;
  baseVersionId: string;
  members: string[];
  rounds: number;
  strategy: { name: string; params: Record<string, number>; clipNorm: number };
  privacy: PrivacySettings;
  selection: SelectionSettings;
  roundDeadlineSeconds: number;
  maxUpdateNorm: number;
  maxUpdateBytes: number;
  termsJson: string;
  clientConfig: Record<string, number>;
  valuationMethod: string;
}

/** Turns the proto-level strategy description into the aggregation library's configuration. */
export function strategyConfigOf(s: NewTask['strategy']): StrategyConfig {
  const p = s.params;
  const clip = s.clipNorm > 0 ? { clipNorm: s.clipNorm } : {};
  switch (s.name || 'fedavg') {
    case 'fedavg':
      return { name: 'fedavg', ...clip };
    case 'fedprox':
      return { name: 'fedprox', mu: p['mu'] ?? 0.01, ...clip };
    case 'fedadam':
    case 'fedyogi':
    case 'fedadagrad':
      return {
        name: s.name,
        ...clip,
        ...(p['eta'] !== undefined ? { eta: p['eta'] } : {}),
        ...(p['beta1'] !== undefined ? { beta1: p['beta1'] } : {}),
        ...(p['beta2'] !== undefined ? { beta2: p['beta2'] } : {}),
        ...(p['tau'] !== undefined ? { tau: p['tau'] } : {}),
      } as StrategyConfig;
    case 'median':
      return { name: 'median' };
    case 'trimmed-mean':
      return { name: 'trimmed-mean', beta: p['beta'] ?? 0.1 };
    case 'krum':
      return { name: 'krum', byzantine: p['byzantine'] ?? 1 };
    case 'multi-krum':
      return { name: 'multi-krum', byzantine: p['byzantine'] ?? 1, keep: p['keep'] ?? 2 };
    default:
      throw new FedmmError('INVALID_ARGUMENT', `unknown strategy ${JSON.stringify(s.name)}; use fedavg, fedprox, fedadam, fedyogi, fedadagrad, median, trimmed-mean, krum or multi-krum`);
  }
}

/** Validates a task definition and fills defaults; errors name the field and what is allowed. */
export async function validateNewTask(t: NewTask, registry: RegistryPort): Promise<TaskRecord> {
  const bad = (msg: string): FedmmError => new FedmmError('INVALID_ARGUMENT', `task: ${msg}`);
  if (!ID.test(t.taskId)) throw bad(`task_id ${JSON.stringify(t.taskId)} must be 1-63 lower-case letters, digits, '.', '_' or '-'`);
  const members = [...new Set(t.members)].sort();
  if (members.length === 0) throw bad('name at least one member tenant');
  for (const m of members) if (!ID.test(m)) throw bad(`member ${JSON.stringify(m)} is not a valid tenant name`);
  if (!Number.isInteger(t.rounds) || t.rounds < 1 || t.rounds > 10_000) throw bad(`rounds must be between 1 and 10000, got ${t.rounds}`);
  const strategy = strategyConfigOf(t.strategy);
  const built = createStrategy(strategy);
  const sel: SelectionSettings = {
    fraction: t.selection.fraction > 0 ? t.selection.fraction : 1,
    minClients: t.selection.minClients > 0 ? t.selection.minClients : 1,
    maxClients: t.selection.maxClients,
  };
  if (sel.fraction > 1) throw bad(`selection.fraction must be in (0, 1], got ${sel.fraction}`);
  if (sel.minClients > members.length) throw bad(`selection.min_clients ${sel.minClients} exceeds the ${members.length} members`);
  const mode = (t.privacy.mode || 'none');
  if (!['none', 'record', 'client'].includes(mode)) throw bad(`privacy.mode ${JSON.stringify(t.privacy.mode)} must be none, record or client`);
  const accountant = (t.privacy.accountant || 'rdp');
  if (accountant !== 'rdp' && accountant !== 'pld') throw bad('privacy.accountant must be rdp or pld');
  const delta = t.privacy.delta > 0 ? t.privacy.delta : 1e-5;
  let noise = t.privacy.noiseMultiplier;
  if (mode !== 'none') {
    if (mode === 'client' && !(t.privacy.clipNorm > 0)) throw bad('client-level DP needs privacy.clip_norm > 0 (the bound each update is clipped to)');
    if (!(noise > 0)) {
      if (!(t.privacy.targetEpsilon > 0)) throw bad(`privacy mode ${mode} needs noise_multiplier or target_epsilon`);
      const q = mode === 'client' ? Math.min(1, (sel.maxClients || members.length) / members.length) : t.clientConfig['sampling_rate'] ?? 0.1;
      const steps = mode === 'client' ? t.rounds : t.rounds * (t.clientConfig['local_steps'] ?? 10);
      noise = planNoise({ epsilon: t.privacy.targetEpsilon, delta, samplingRate: q, steps, accountant });
    }
  }
  if (t.privacy.secureAggregation) {
    if (t.privacy.secaggThreshold < 2) throw bad('secure aggregation needs secagg_threshold >= 2');
    // The clip norm is the fixed-point range of the masked encoding: every client clips its update to it.
    if (!(t.privacy.clipNorm > 0)) throw bad('secure aggregation needs privacy.clip_norm > 0: each client clips its update to it before masking, and it sets the fixed-point range');
    if (strategy.name !== 'fedavg' && strategy.name !== 'fedprox') {
      throw bad(`secure aggregation reveals only the sum of the updates, so it runs with fedavg or fedprox (an unweighted mean), not ${strategy.name}`);
    }
    const n = t.privacy.secaggNumShares;
    if (n > 0 && n < t.privacy.secaggThreshold) throw bad(`secagg_num_shares ${n} is below secagg_threshold ${t.privacy.secaggThreshold}; use 0 for a complete graph or an odd number >= 2 * threshold - 1`);
    checkGroupSize(t.privacy, bad);
  } else if ((t.privacy.secaggGroupSize ?? 0) > 0) {
    throw bad(`secagg_group_size ${t.privacy.secaggGroupSize} needs privacy.secure_aggregation = true; set it, or leave secagg_group_size at 0`);
  }
  const version = await registry.getVersion(t.baseVersionId);
  if (version.modelId !== t.modelId) throw bad(`base version ${t.baseVersionId} belongs to model ${version.modelId}, not ${t.modelId}`);
  if (version.layout.tensors.length === 0) throw bad(`base version ${t.baseVersionId} has no tensors`);
  if (t.termsJson) {
    try {
      JSON.parse(t.termsJson);
    } catch {
      throw bad('terms_json is not valid JSON');
    }
  }
  return {
    taskId: t.taskId,
    modelId: t.modelId,
    baseVersionId: t.baseVersionId,
    members,
    rounds: t.rounds,
    strategy,
    privacy: { ...t.privacy, mode, accountant, delta, noiseMultiplier: noise, secaggGroupSize: t.privacy.secureAggregation ? (t.privacy.secaggGroupSize ?? 0) : 0 },
    selection: sel,
    roundDeadlineSeconds: t.roundDeadlineSeconds > 0 ? t.roundDeadlineSeconds : 300,
    maxUpdateNorm: t.maxUpdateNorm,
    maxUpdateBytes: t.maxUpdateBytes > 0 ? t.maxUpdateBytes : 4 * 1024 ** 3,
    termsJson: t.termsJson,
    termsDigest: t.termsJson ? createHash('sha256').update(t.termsJson).digest('hex') : '',
    createdAt: Date.now(),
    clientConfig: { ...built.clientConfig(), ...t.clientConfig },
    state: 'created',
    currentRound: 0,
    latestVersionId: t.baseVersionId,
    valuationMethod: t.valuationMethod || 'auto',
    accepted: [],
  };
}

/**
 * Secure aggregation in groups: every group's sum is revealed (to valuation), so each group must
 * hold at least the threshold; and the threshold must stay a majority of a group's shares, or no
 * group's configuration compiles when a round opens.
 */
function checkGroupSize(p: PrivacySettings, bad: (msg: string) => FedmmError): void {
  const size = p.secaggGroupSize ?? 0;
  if (size === 0) return;
  const t = p.secaggThreshold;
  if (!Number.isInteger(size) || size < t) {
    throw bad(`secagg_group_size ${size} is below secagg_threshold ${t}: each group's sum must cover at least the threshold; set secagg_group_size >= ${t}, or 0 for one group of every selected client`);
  }
  if (p.secaggNumShares === 0 && size > 2 * t - 1) {
    throw bad(
      `secagg_group_size ${size} with a complete graph in each group (secagg_num_shares 0) needs secagg_threshold > half a group; ` +
        `set secagg_threshold >= ${Math.floor(size / 2) + 1}, secagg_group_size <= ${2 * t - 1}, or secagg_num_shares to an odd number k with ${t} <= k <= ${2 * t - 1}`,
    );
  }
}
