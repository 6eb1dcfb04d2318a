import type { SecureGroup } from '@fedmm/valuation';
import type { ContributionState, Evaluator } from './types.js';

/** What valuation reads of a task (from the aggregator's task record). */
export interface TaskView {
  readonly taskId: string;
  readonly modelId: string;
  readonly members: readonly string[];
  readonly termsJson: string;
  /** exact, gtg, monte-carlo, leave-one-out, or empty/auto. */
  readonly valuationMethod: string;
  readonly secureAggregation: boolean;
  readonly secaggThreshold: number;
}

/** A company whose update the round counted. */
export interface ReceivedView {
  readonly tenant: string;
  readonly sha256: string;
  readonly numExamples: number;
  readonly numShards: number;
}

/** What valuation reads of a round (from the aggregator's round record). */
export interface RoundView {
  readonly number: number;
  readonly attempt: number;
  readonly state: string;
  readonly received: readonly ReceivedView[];
  readonly inputVersionId: string;
  readonly outputVersionId: string;
  readonly layout: { readonly tensors: readonly { readonly name: string; readonly shape: readonly number[]; readonly modality?: string }[] };
  /** Under secure aggregation in groups: the groups whose sums unmasked, each with its survivors. */
  readonly secureGroups?: readonly SecureGroup[];
}

/** Where tasks and rounds come from. */
export interface RoundSource {
  task(taskId: string): Promise<TaskView | undefined>;
  round(taskId: string, round: number): Promise<RoundView | undefined>;
}

/** A model version's tensors (float32), by name. */
export type ParamsSource = (versionId: string) => Promise<Map<string, Float32Array>>;

/** Individual updates kept for rounds without secure aggregation. */
export interface UpdateSource {
  list(task: string, round: number): Promise<readonly { client: string; attempt: number; sha256: string; shards: readonly number[] }[]>;
  read(task: string, round: number, client: string, totalElements: number): Promise<Float32Array>;
  removeRound(task: string, round: number): Promise<void>;
}

/** The validation metric of a task, when it has a validation set; undefined: use the fallback. */
export type EvaluatorSource = (task: TaskView, round: RoundView) => Promise<{ readonly evaluator: Evaluator; readonly metric: string } | undefined>;

/**
 * Secure sub-aggregates of a round under secure aggregation: disjoint groups of at least the
 * threshold and the summed delta of any union of whole groups. Nothing here can yield one
 * company's update.
 */
export interface SecureAggregates {
  groups(task: TaskView, round: RoundView): Promise<SecureGroup[]>;
  aggregateOfGroups(task: TaskView, round: RoundView, groupIds: readonly string[]): Promise<Map<string, Float32Array>>;
  /** Called once the round is scored: what was kept only for valuation can go. */
  release?(task: TaskView, round: RoundView): Promise<void>;
}

/** Access tiers as the registry enforces them. */
export type AccessRuleSink = (rule: { modelId: string; tenant: string; tier: string; versionDelayRounds: number }) => Promise<void>;

/** The audit trail (the aggregator's AuditPort shape). */
export interface AuditAppender {
  append(taskId: string, kind: string, payload: Record<string, unknown>, actor: string): Promise<unknown>;
}

/** Where contribution state lives. */
export interface ContributionRepo {
  get(taskId: string): Promise<ContributionState | undefined>;
  /** Read-modify-write; `update` returns the next state. */
  update(taskId: string, update: (current: ContributionState | undefined) => ContributionState): Promise<ContributionState>;
}
