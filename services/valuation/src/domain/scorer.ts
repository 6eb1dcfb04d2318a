import { failedPrecondition, FedmmError, invalidArgument, KeyedMutex, notFound, type Logger } from '@fedmm/core';
import { createLayout, type TensorLayout } from '@fedmm/tensor';
import {
  accessTier, accumulate, compileAccessTiers, compileRewardRule, leaveOneOut, rewardShares, runShapley, secureGroupShapley,
  SubsetModelUtility, type AccessTierConfig, type AggregateFn, type EvaluateFn, type RewardRule, type ShapleyMethod, type ValuationResult,
} from '@fedmm/valuation';
import { fedmmMetrics } from '@fedmm/telemetry';
import type {
  AccessRuleSink, AuditAppender, ContributionRepo, EvaluatorSource, ParamsSource, RoundSource, RoundView, SecureAggregates, TaskView, UpdateSource,
} from './ports.js';
import type { ContributionRow, ContributionState, Evaluator, RoundValuation } from './types.js';

export interface ScorerOptions {
  readonly rounds: RoundSource;
  readonly params: ParamsSource;
  readonly updates: UpdateSource;
  readonly evaluators: EvaluatorSource;
  readonly secure: SecureAggregates;
  readonly accessRules: AccessRuleSink;
  readonly audit: AuditAppender;
  readonly repo: ContributionRepo;
  readonly log: Logger;
  readonly exactMaxCompanies: number;
  readonly updateWaitMs: number;
  readonly seed: string;
}

/** The result of scoring one round, and the table after it. */
export interface ScoredRound {
  readonly round: RoundValuation;
  readonly table: ContributionRow[];
}

/**
 * Values each company's contribution to a published round, folds it into the task's cumulative
 * values, reward shares and access tiers, pushes the tiers to the registry and records it all in
 * the audit trail. Scoring a round twice returns the first result: nothing is counted twice.
 */
export class Scorer {
  readonly #o: ScorerOptions;
  readonly #mutex = new KeyedMutex();

  constructor(options: ScorerOptions) {
    this.#o = options;
  }

  /** Scores a round of a task (idempotent per round). */
  async scoreRound(taskId: string, roundNumber: number): Promise<ScoredRound> {
    if (!taskId) throw invalidArgument('ScoreRound needs a task id');
    if (!Number.isInteger(roundNumber) || roundNumber < 1) throw invalidArgument(`round ${roundNumber} is not a round number; rounds count from 1`);
    return this.#mutex.run(taskId, async () => {
      const task = await this.#o.rounds.task(taskId);
      if (!task) throw notFound(`task ${taskId} does not exist; create it with fedmm task create`);
      const round = await this.#o.rounds.round(taskId, roundNumber);
      if (!round) throw notFound(`task ${taskId} has no round ${roundNumber}`);
      if (round.state !== 'published') {
        throw failedPrecondition(`round ${roundNumber} of task ${taskId} is ${round.state}; only a published round can be scored`);
      }
      const before = await this.#o.repo.get(taskId);
      const done = before?.rounds.find((r) => r.round === roundNumber);
      if (done) return { round: done, table: contributionTable(before!, task) };

      const valuation = round.received.length === 0 ? emptyRound(round) : task.secureAggregation ? await this.#scoreSecure(task, round) : await this.#scorePlain(task, round);
      const { rewardRule, accessTiers } = termsOf(task);
      const state = await this.#o.repo.update(taskId, (cur) => {
        const rounds = [...(cur?.rounds ?? []).filter((r) => r.round !== roundNumber), valuation].sort((a, b) => a.round - b.round);
        return standing(taskId, task.members, rounds, rewardRule, accessTiers);
      });
      for (const [tenant, tier] of Object.entries(state.tiers)) {
        await this.#o.accessRules({ modelId: task.modelId, tenant, tier: tier.tier, versionDelayRounds: tier.versionDelay });
      }
      await this.#o.audit.append(taskId, 'contribution.recorded', { ...valuation, scoredAt: new Date(valuation.scoredAt).toISOString() }, 'valuation');
      await this.#o.audit.append(taskId, 'reward.assigned', { round: roundNumber, cumulative: state.cumulative, shares: state.shares, tiers: state.tiers }, 'valuation');
      for (const [tenant, v] of Object.entries(state.cumulative)) fedmmMetrics().contribution.set(v, { tenant, task: taskId });
      if (!task.secureAggregation) await this.#o.updates.removeRound(taskId, roundNumber);
      else await this.#o.secure.release?.(task, round);
      this.#o.log.info('round scored', { task: taskId, round: roundNumber, method: valuation.method, utility: valuation.utility, evaluations: valuation.evaluations });
      return { round: valuation, table: contributionTable(state, task) };
    });
  }

  /** The task's table (empty before its first scored round). */
  async contributions(taskId: string): Promise<{ state: ContributionState | undefined; table: ContributionRow[] }> {
    const task = await this.#o.rounds.task(taskId);
    if (!task) throw notFound(`task ${taskId} does not exist; check the id with fedmm task list`);
    const state = await this.#o.repo.get(taskId);
    return { state, table: state ? contributionTable(state, task) : [] };
  }

  async #scorePlain(task: TaskView, round: RoundView): Promise<RoundValuation> {
    const layout = layoutOf(round);
    await this.#waitForUpdates(task, round);
    const players = round.received.map((r) => r.tenant);
    const updates = await Promise.all(
      round.received.map(async (r) => ({ client: r.tenant, weight: Math.max(1, r.numExamples), update: await this.#o.updates.read(task.taskId, round.number, r.tenant, layout.totalElements) })),
    );
    const previous = flatten(layout, round.inputVersionId ? await this.#o.params(round.inputVersionId) : new Map());
    const totalWeight = updates.reduce((s, u) => s + u.weight, 0);
    const aggregate = shareOfRound(totalWeight);
    const { evaluate, utility } = await this.#evaluateFn(task, round, layout, previous, async () => addFlat(previous, await aggregate(updates)));
    const u = new SubsetModelUtility({ previous, updates, evaluate, aggregate, apply: addFlat });
    const method = this.#method(task, players.length, round);
    const result = method === 'leave-one-out' ? await leaveOneOut(players, u.utility) : await runShapley(players, u.utility, method);
    return valuationOf(round, result, utility, false);
  }

  async #scoreSecure(task: TaskView, round: RoundView): Promise<RoundValuation> {
    const layout = layoutOf(round);
    const previous = flatten(layout, round.inputVersionId ? await this.#o.params(round.inputVersionId) : new Map());
    const groups = await this.#o.secure.groups(task, round);
    const all = groups.map((g) => g.id);
    const union = async (ids: readonly string[]): Promise<Float32Array> => flatten(layout, await this.#o.secure.aggregateOfGroups(task, round, ids));
    const { evaluate, utility } = await this.#evaluateFn(task, round, layout, previous, async () => addFlat(previous, await union(all)));
    const threshold = Math.max(1, Math.min(task.secaggThreshold || 1, ...groups.map((g) => g.members.length)));
    const method = this.#method(task, groups.length, round);
    const result = await secureGroupShapley({
      groups,
      threshold,
      previous,
      aggregateOfGroups: union,
      evaluate,
      method: method === 'leave-one-out' ? { kind: 'exact' } : method,
    });
    return { ...valuationOf(round, result, utility, true), groups: result.groups };
  }

  /** The task's validation metric, or the consensus-distance fallback (see docs/VALUATION.md). */
  async #evaluateFn(task: TaskView, round: RoundView, layout: TensorLayout, previous: Float32Array, fullModel: () => Promise<Float32Array>): Promise<{ evaluate: EvaluateFn; utility: string }> {
    const found = await this.#o.evaluators(task, round);
    if (found) return { evaluate: (flat) => found.evaluator(unflatten(layout, flat)), utility: `validation:${found.metric}` };
    return { evaluate: consensusDistance(previous, await fullModel()), utility: 'consensus-distance' };
  }

  #method(task: TaskView, players: number, round: RoundView): ShapleyMethod | 'leave-one-out' {
    const seed = `${this.#o.seed}/${task.taskId}/${round.number}/${round.attempt}`;
    switch (task.valuationMethod) {
      case '':
      case 'auto':
      case 'shapley':
        return players <= this.#o.exactMaxCompanies ? { kind: 'exact' } : { kind: 'gtg', options: { seed } };
      case 'exact':
        return { kind: 'exact' };
      case 'gtg':
        return { kind: 'gtg', options: { seed } };
      case 'monte-carlo':
        return { kind: 'monte-carlo', options: { tolerance: 0.005, maxPermutations: 2000, seed } };
      case 'leave-one-out':
        return 'leave-one-out';
      default:
        throw failedPrecondition(`task ${task.taskId} asks for valuation method ${JSON.stringify(task.valuationMethod)}; use auto, exact, gtg, monte-carlo or leave-one-out`);
    }
  }

  async #waitForUpdates(task: TaskView, round: RoundView): Promise<void> {
    const deadline = Date.now() + this.#o.updateWaitMs;
    for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
      const stored = await this.#o.updates.list(task.taskId, round.number);
      const missing = round.received.filter((r) => {
        const m = stored.find((s) => s.client === r.tenant);
        return !m || m.attempt !== round.attempt || m.sha256 !== r.sha256 || m.shards.length < r.numShards;
      });
      if (missing.length === 0) return;
      if (Date.now() >= deadline) {
        throw new FedmmError(
          'FAILED_PRECONDITION',
          `the updates of ${missing.map((m) => m.tenant).join(', ')} for round ${round.number} of task ${task.taskId} have not arrived from fedmm.updates yet; check the valuation consumer's lag and retry ScoreRound`,
        );
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * The fallback utility when a task has no validation set: minus the distance of a candidate to the
 * round's model, in units of the round's step (v(empty) = -1, v(all) = 0). With round-share
 * aggregation a zero update changes no candidate (value exactly 0) and equal updates of equal
 * weight are symmetric (equal values); the values sum to 1 and say how much of the round's
 * movement each company supplied.
 */
export function consensusDistance(previous: Float32Array, full: Float32Array): EvaluateFn {
  const step = distance(previous, full);
  return (params) => Promise.resolve(step === 0 ? 0 : -distance(params, full) / step);
}

function distance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    s += d * d;
  }
  return Math.sqrt(s);
}

/**
 * The library's roundShare (each update weighted by its share of the round, absent = zero) in one
 * tight float32 pass per update: candidate models are built 2^n times per round.
 */
function shareOfRound(totalWeight: number): AggregateFn {
  return (updates) => {
    const out = new Float32Array(updates[0]?.update.length ?? 0);
    for (const { update, weight } of updates) {
      const f = weight / totalWeight;
      for (let i = 0; i < out.length; i++) out[i]! += f * update[i]!;
    }
    return out;
  };
}

function addFlat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! + b[i]!;
  return out;
}

/** The round's flat parameter space (tensors sorted by name, as uploads are laid out). */
export function layoutOf(round: RoundView): TensorLayout {
  return createLayout(round.layout.tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: [...t.shape], ...(t.modality ? { modality: t.modality } : {}) })));
}

/** Tensors by name into the flat space of a layout (absent tensors are zeros). */
export function flatten(layout: TensorLayout, tensors: ReadonlyMap<string, Float32Array>): Float32Array {
  const out = new Float32Array(layout.totalElements);
  for (const e of layout.entries) {
    const t = tensors.get(e.name);
    if (!t) continue;
    if (t.length !== e.length) throw failedPrecondition(`tensor ${e.name} has ${t.length} values, the round's layout says ${e.length}; the version does not match the round`);
    out.set(t, e.offset);
  }
  return out;
}

/** The flat space back into tensors by name (views, no copy). */
export function unflatten(layout: TensorLayout, flat: Float32Array): Map<string, Float32Array> {
  return new Map(layout.entries.map((e) => [e.name, flat.subarray(e.offset, e.offset + e.length)]));
}

function valuationOf(round: RoundView, r: ValuationResult, utility: string, secure: boolean): RoundValuation {
  return {
    round: round.number,
    attempt: round.attempt,
    method: r.method,
    utility,
    values: r.values,
    evaluations: r.evaluations,
    emptyValue: r.emptyValue,
    fullValue: r.fullValue,
    secure,
    scoredAt: Date.now(),
  };
}

function emptyRound(round: RoundView): RoundValuation {
  return { round: round.number, attempt: round.attempt, method: 'none', utility: 'none', values: {}, evaluations: 0, emptyValue: 0, fullValue: 0, secure: false, scoredAt: Date.now() };
}

/** The reward rule and tiers of the task's terms (defaults when the terms leave them out). */
export function termsOf(task: TaskView): { rewardRule: RewardRule; accessTiers: AccessTierConfig } {
  let terms: { rewardRule?: Partial<RewardRule>; accessTiers?: { tiers?: AccessTierConfig['tiers'] } } = {};
  if (task.termsJson) {
    try {
      terms = JSON.parse(task.termsJson) as typeof terms;
    } catch {
      throw failedPrecondition(`the terms of task ${task.taskId} are not JSON; record valid terms before scoring`);
    }
  }
  return { rewardRule: compileRewardRule(terms.rewardRule ?? {}), accessTiers: compileAccessTiers(terms.accessTiers ?? {}) };
}

/** Cumulative values, shares and tiers from the scored rounds; every member gets a tier. */
export function standing(taskId: string, members: readonly string[], rounds: readonly RoundValuation[], rule: RewardRule, tiers: AccessTierConfig): ContributionState {
  let cumulative: Record<string, number> = Object.fromEntries(members.map((m) => [m, 0]));
  for (const r of rounds) cumulative = accumulate(cumulative, r.values);
  const shares = rewardShares(cumulative, rule);
  const assigned = Object.fromEntries(Object.entries(shares).map(([id, s]) => [id, accessTier(Math.min(1, s), tiers)]));
  return { taskId, rounds, cumulative, shares, tiers: assigned };
}

/** The table rows: each tenant's last scored round value, cumulative value, share and tier. */
export function contributionTable(state: ContributionState, task: Pick<TaskView, 'members'>): ContributionRow[] {
  const last = state.rounds[state.rounds.length - 1];
  const tenants = [...new Set([...task.members, ...Object.keys(state.cumulative)])].sort();
  return tenants.map((tenant) => ({
    tenant,
    roundValue: last?.values[tenant] ?? 0,
    cumulativeValue: state.cumulative[tenant] ?? 0,
    rewardShare: state.shares[tenant] ?? 0,
    tier: state.tiers[tenant]?.tier ?? '',
    versionDelayRounds: state.tiers[tenant]?.versionDelay ?? 0,
  }));
}

export type { Evaluator };
