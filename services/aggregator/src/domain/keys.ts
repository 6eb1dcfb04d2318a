import { storeKey } from '@fedmm/store';

export const taskKey = (taskId: string): string => storeKey('aggregator', 'task', taskId);
export const TASK_PREFIX = storeKey('aggregator', 'task', '');
export const roundKey = (taskId: string, n: number): string => storeKey('aggregator', 'round', taskId, String(n).padStart(6, '0'));
export const roundPrefix = (taskId: string): string => storeKey('aggregator', 'round', taskId, '');
/** A round that workers must finish: present while the round aggregates. */
export const activeKey = (taskId: string): string => storeKey('aggregator', 'active', taskId);
export const ACTIVE_PREFIX = storeKey('aggregator', 'active', '');
export const shardResultPrefix = (taskId: string, n: number, attempt: number): string =>
  storeKey('aggregator', 'shard', taskId, String(n), String(attempt), '');
export const shardResultKey = (taskId: string, n: number, attempt: number, shard: number): string =>
  storeKey('aggregator', 'shard', taskId, String(n), String(attempt), String(shard).padStart(8, '0'));
export const optimizerStateKey = (taskId: string, shard: number): string => storeKey('aggregator', 'optstate', taskId, String(shard));
/** A shard's share of the pairwise distances between clients (Krum's first phase). */
export const distancesKey = (taskId: string, n: number, attempt: number, shard: number): string =>
  storeKey('aggregator', 'distances', taskId, String(n), String(attempt), String(shard).padStart(8, '0'));
export const distancesPrefix = (taskId: string, n: number, attempt: number): string =>
  storeKey('aggregator', 'distances', taskId, String(n), String(attempt), '');
/** The clients Krum selected from all shards' distances (its second phase). */
export const selectionKey = (taskId: string, n: number, attempt: number): string => storeKey('aggregator', 'selection', taskId, String(n), String(attempt));
/** The unmask plan of a secure round (of one group of it) for the shard workers: round-confidential, never logged, deleted when the round ends. */
export const secaggPlanKey = (taskId: string, n: number, attempt: number, group?: string): string =>
  group === undefined ? storeKey('aggregator', 'secagg-plan', taskId, String(n), String(attempt)) : storeKey('aggregator', 'secagg-plan', taskId, String(n), String(attempt), group);
/** The messages the coordinator accepted when it closed a stage of a secure round (of one group of it), replayed after a restart. */
export const secaggStageKey = (taskId: string, n: number, attempt: number, stage: number, group?: string): string =>
  group === undefined ? storeKey('aggregator', 'secagg', taskId, String(n), String(attempt), String(stage)) : storeKey('aggregator', 'secagg', taskId, String(n), String(attempt), group, String(stage));
export const secaggRoundPrefix = (taskId: string, n: number, attempt: number): string => storeKey('aggregator', 'secagg', taskId, String(n), String(attempt), '');
/**
 * One shard of one group's unmasked sum in a round with secure-aggregation groups: what valuation
 * reads (never an individual update; every group holds at least the threshold).
 */
export const groupSumKey = (taskId: string, n: number, attempt: number, group: string, shard: number): string =>
  storeKey('aggregator', 'group-sum', taskId, String(n), String(attempt), group, String(shard).padStart(8, '0'));
export const groupSumPrefix = (taskId: string, n: number, attempt: number, group?: string): string =>
  group === undefined ? storeKey('aggregator', 'group-sum', taskId, String(n), String(attempt), '') : storeKey('aggregator', 'group-sum', taskId, String(n), String(attempt), group, '');
