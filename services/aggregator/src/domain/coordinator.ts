import { createHash } from 'node:crypto';
import { FedmmError, KeyedMutex, isFedmmError, repeat, type Logger, type Repeating } from '@fedmm/core';
import { context, trace, type Link } from '@opentelemetry/api';
import { Topics, type Bus } from '@fedmm/bus';
import { getJson, listJson, type Store } from '@fedmm/store';
import { events as epb } from '@fedmm/proto';
import { createLayout, shardCount, DEFAULT_SHARD_ELEMENTS, type ParamDType } from '@fedmm/tensor';
import { fedmmMetrics } from '@fedmm/telemetry';
import type { LeaderLease } from './lease.js';
import { selectClients } from './selection.js';
import { activeKey, distancesPrefix, roundKey, roundPrefix, selectionKey, shardResultPrefix, taskKey, TASK_PREFIX } from './keys.js';
import { createStrategy, selectKrum, sumPartialDistances } from '@fedmm/aggregation';
import type { ReceivedUpdate, RoundRecord, RoundState, ShardDoneMarker, TaskRecord } from './types.js';
import type { AuditPort, MechanismEvent, PrivacyPort, RegistryPort, ValuationPort, VersionInfo } from '../ports/index.js';
import { validateNewTask, type NewTask } from './task-validation.js';
import { groupOfClient, isSecureRound, SecAggDriver, secureGroups, unmaskedSurvivors } from '../secagg/driver.js';

export interface CoordinatorDeps {
  store: Store;
  bus: Bus;
  registry: RegistryPort;
  privacy: PrivacyPort;
  valuation: ValuationPort;
  audit: AuditPort;
  lease: LeaderLease;
  log: Logger;
  shardElements?: number;
  /** How often the leader checks deadlines and finished shards. */
  tickMs?: number;
  /** Attempts of one round before the task fails. */
  maxAttempts?: number;
  /** Start the next round automatically after one publishes (default true). */
  autoAdvance?: boolean;
}

const ACTIVE_STATES: RoundState[] = ['open', 'collecting', 'sealing', 'aggregating'];

/**
 * The round coordinator: task and round state machine persisted in the store. Only the lease
 * holder acts; every write it makes is fenced by the lease, and a restarted or new leader
 * continues each active round from its stored state.
 */
export class Coordinator {
  private readonly mutex = new KeyedMutex();
  private ticks: Repeating | undefined;
  private readonly shardElements: number;
  private readonly secagg: SecAggDriver;

  constructor(private readonly d: CoordinatorDeps) {
    this.shardElements = d.shardElements ?? DEFAULT_SHARD_ELEMENTS;
    this.secagg = new SecAggDriver(d.store, async (writes) => {
      const ok = await d.store.atomic([d.lease.fence()], writes);
      if (!ok) throw new FedmmError('ABORTED', 'the coordinator lost its lease while writing; the new leader continues the round');
    }, d.log);
  }

  start(): void {
    this.d.lease.run((leader) => this.d.log.info(leader ? 'coordinator is the leader' : 'coordinator is standing by'));
    this.ticks = repeat(async () => {
      try {
        if (this.d.lease.isLeader) await this.tick();
      } catch (e) {
        this.d.log.error('coordinator tick failed', { err: e });
      }
    }, this.d.tickMs ?? 250);
  }

  async stop(): Promise<void> {
    await this.ticks?.stop();
    await this.d.lease.release();
  }

  private requireLeader(): void {
    if (!this.d.lease.isLeader) throw new FedmmError('UNAVAILABLE', 'this coordinator replica is not the leader; retry against the aggregator service (another replica leads)');
  }

  /** Writes a document fenced by the lease: fails if leadership moved. */
  private async fencedPut(key: string, value: unknown): Promise<void> {
    const ok = await this.d.store.atomic([this.d.lease.fence()], [{ key, value: JSON.stringify(value) }]);
    if (!ok) throw new FedmmError('ABORTED', 'the coordinator lost its lease while writing; the new leader continues the round');
  }

  private async fencedDelete(key: string): Promise<void> {
    await this.d.store.atomic([this.d.lease.fence()], [{ key, value: null }]);
  }

  // ---- tasks ----

  async createTask(input: NewTask): Promise<TaskRecord> {
    this.requireLeader();
    const task = await validateNewTask(input, this.d.registry);
    return this.mutex.run(task.taskId, async () => {
      const existing = await getJson<TaskRecord>(this.d.store, taskKey(task.taskId));
      if (existing) throw new FedmmError('ALREADY_EXISTS', `task ${task.taskId} already exists; choose another id or inspect it with fedmm task show ${task.taskId}`);
      await this.fencedPut(taskKey(task.taskId), task);
      await this.d.audit.append(task.taskId, 'task.created', { task: { ...task, termsJson: undefined } }, 'coordinator');
      if (task.termsJson) await this.d.audit.append(task.taskId, 'terms.recorded', { termsDigest: task.termsDigest, terms: JSON.parse(task.termsJson) as unknown }, 'coordinator');
      this.d.log.info('task created', { task: task.taskId, members: task.members.length, rounds: task.rounds, strategy: task.strategy.name });
      return task;
    });
  }

  async getTask(taskId: string): Promise<TaskRecord> {
    const doc = await getJson<TaskRecord>(this.d.store, taskKey(taskId));
    if (!doc) throw new FedmmError('NOT_FOUND', `task ${JSON.stringify(taskId)} does not exist; list tasks with fedmm task list`);
    return doc.value;
  }

  async listTasks(): Promise<TaskRecord[]> {
    return (await listJson<TaskRecord>(this.d.store, TASK_PREFIX)).map((e) => e.value);
  }

  async recordTermsAcceptance(taskId: string, tenant: string, termsDigest: string, evidence: { signatureB64: string; certificatePem: string }): Promise<void> {
    this.requireLeader();
    await this.mutex.run(taskId, async () => {
      const task = await this.getTask(taskId);
      if (!task.members.includes(tenant)) throw new FedmmError('PERMISSION_DENIED', `tenant ${tenant} is not a member of task ${taskId}`);
      if (termsDigest !== task.termsDigest) throw new FedmmError('FAILED_PRECONDITION', `the accepted terms digest ${termsDigest.slice(0, 12)}... is not the task's current terms ${task.termsDigest.slice(0, 12)}...; fetch the task and accept its current terms`);
      if (!task.accepted.includes(tenant)) {
        await this.fencedPut(taskKey(taskId), { ...task, accepted: [...task.accepted, tenant].sort() });
        await this.d.audit.append(taskId, 'terms.accepted', { tenant, termsDigest, signature: evidence.signatureB64, certificate: evidence.certificatePem }, tenant);
      }
    });
  }

  /** Replaces the terms; acceptances of the old terms no longer count, so members accept again. */
  async updateTerms(taskId: string, termsJson: string): Promise<TaskRecord> {
    this.requireLeader();
    try {
      JSON.parse(termsJson);
    } catch {
      throw new FedmmError('INVALID_ARGUMENT', 'terms_json is not valid JSON');
    }
    return this.mutex.run(taskId, async () => {
      const task = await this.getTask(taskId);
      const termsDigest = createHash('sha256').update(termsJson).digest('hex');
      if (termsDigest === task.termsDigest) return task;
      const next: TaskRecord = { ...task, termsJson, termsDigest, accepted: [] };
      await this.fencedPut(taskKey(taskId), next);
      await this.d.audit.append(taskId, 'terms.recorded', { termsDigest, previousDigest: task.termsDigest, terms: JSON.parse(termsJson) as unknown }, 'coordinator');
      this.d.log.info('task terms changed; members must accept them again', { task: taskId, termsDigest });
      return next;
    });
  }

  // ---- rounds ----

  async getRound(taskId: string, n: number): Promise<RoundRecord> {
    const doc = await getJson<RoundRecord>(this.d.store, roundKey(taskId, n));
    if (!doc) throw new FedmmError('NOT_FOUND', `task ${taskId} has no round ${n}`);
    return doc.value;
  }

  async listRounds(taskId: string): Promise<RoundRecord[]> {
    await this.getTask(taskId);
    return (await listJson<RoundRecord>(this.d.store, roundPrefix(taskId))).map((e) => e.value);
  }

  /** Opens the task's next round (or retries the current one with a new attempt). */
  async startRound(taskId: string, retryOf?: RoundRecord): Promise<RoundRecord> {
    this.requireLeader();
    return this.mutex.run(taskId, async () => {
      const task = await this.getTask(taskId);
      const n = retryOf ? retryOf.number : task.currentRound + 1;
      if (!retryOf) {
        if (task.state === 'completed' || task.state === 'failed') throw new FedmmError('FAILED_PRECONDITION', `task ${taskId} is ${task.state}; create a new task to train further`);
        if (n > task.rounds) throw new FedmmError('FAILED_PRECONDITION', `task ${taskId} has run all its ${task.rounds} rounds`);
        if (task.currentRound > 0) {
          const cur = await this.getRound(taskId, task.currentRound);
          if (ACTIVE_STATES.includes(cur.state)) throw new FedmmError('FAILED_PRECONDITION', `round ${cur.number} of task ${taskId} is still ${cur.state}; wait for it or cancel it (fedmm round cancel)`);
        }
      }
      const attempt = retryOf ? retryOf.attempt + 1 : 1;
      const eligible = task.termsJson ? task.members.filter((m) => task.accepted.includes(m)) : task.members;
      const selected = selectClients(eligible, { ...task.selection, seed: `${taskId}/${n}/${attempt}` });
      if (selected.length < Math.max(1, task.selection.minClients)) {
        throw new FedmmError('FAILED_PRECONDITION', `round ${n} of task ${taskId} needs ${task.selection.minClients} clients but only ${selected.length} members are eligible${task.termsJson ? ' (members must accept the task terms first)' : ''}`);
      }
      const input = await this.d.registry.getVersion(task.latestVersionId);
      const layout = createLayout(input.layout.tensors.map((t) => ({ name: t.name, dtype: t.dtype as ParamDType, shape: t.shape, ...(t.modality ? { modality: t.modality } : {}) })));
      const events = this.mechanismEvents(task, selected);
      let reservationId = '';
      if (events.length > 0) {
        const r = await this.d.privacy.reserve({ taskId, round: n, attempt, events, delta: task.privacy.delta, accountant: task.privacy.accountant });
        reservationId = r.reservationId;
        await this.d.audit.append(taskId, 'budget.reserved', { round: n, attempt, reservationId, epsilonByTenant: r.epsilonByTenant }, 'coordinator');
      }
      const start = await this.d.bus.endOffsets(Topics.updates);
      const now = Date.now();
      const round: RoundRecord = {
        taskId,
        number: n,
        attempt,
        state: 'open',
        selected,
        received: [],
        dropped: [],
        inputVersionId: input.versionId,
        outputVersionId: '',
        openedAt: now,
        deadlineAt: now + task.roundDeadlineSeconds * 1000,
        closedAt: 0,
        failureReason: '',
        updateStartOffsets: Object.fromEntries(start.map((o) => [String(o.partition), o.offset])),
        updateEndOffsets: {},
        layout: { tensors: input.layout.tensors, fingerprint: layout.fingerprint, totalElements: layout.totalElements },
        shardElements: this.shardElements,
        numShards: shardCount(layout, this.shardElements),
        reservationId,
        shardsDone: 0,
        metrics: {},
      };
      try {
        if (task.privacy.secureAggregation) Object.assign(round, this.secagg.plan(task, round, layout.totalElements));
        await this.fencedPut(roundKey(taskId, n), round);
        if (isSecureRound(round)) await this.secagg.sendSetup(round);
        await this.fencedPut(activeKey(taskId), { taskId, round: n, attempt });
        await this.fencedPut(taskKey(taskId), { ...task, currentRound: n, state: 'running' });
      } catch (e) {
        if (reservationId) await this.d.privacy.release(reservationId, 'round could not open').catch(() => undefined);
        throw e;
      }
      await this.d.audit.append(taskId, 'round.opened', { round: n, attempt, inputVersionId: input.versionId, deadlineAt: round.deadlineAt }, 'coordinator');
      const groups = round.secaggGroups?.map((g) => ({ id: g.group, members: g.participants }));
      await this.d.audit.append(taskId, 'round.selection', { round: n, attempt, selected, seed: `${taskId}/${n}/${attempt}`, ...(groups ? { secureAggregationGroups: groups } : {}) }, 'coordinator');
      await this.publishEvent(taskId, n, {
        $case: 'opened',
        value: epb.RoundOpened.fromPartial({
          selected,
          inputVersionId: input.versionId,
          deadlineUnixMs: round.deadlineAt,
          clientConfig: task.clientConfig,
          strategy: { name: task.strategy.name, params: strategyParams(task), clipNorm: task.privacy.mode === 'client' ? task.privacy.clipNorm : 0 },
          privacy: { ...task.privacy },
          attempt,
        }),
      });
      this.d.log.info('round opened', { task: taskId, round: n, attempt, selected: selected.length, shards: round.numShards });
      this.observeStates();
      return round;
    });
  }

  private mechanismEvents(task: TaskRecord, selected: string[]): MechanismEvent[] {
    const p = task.privacy;
    if (p.mode === 'client') {
      // Every member is in the population the round samples from, so each is charged the round.
      const q = Math.min(1, selected.length / Math.max(1, task.members.length));
      return task.members.map((t) => ({ tenant: t, samplingRate: q, noiseMultiplier: p.noiseMultiplier, steps: 1 }));
    }
    if (p.mode === 'record') {
      const q = task.clientConfig['sampling_rate'] ?? 0.1;
      const steps = task.clientConfig['local_steps'] ?? 10;
      return selected.map((t) => ({ tenant: t, samplingRate: q, noiseMultiplier: p.noiseMultiplier, steps }));
    }
    return [];
  }

  /** What the gateway asks before it accepts an upload. */
  async uploadPolicy(taskId: string, n: number, tenant: string): Promise<{ round: RoundRecord; task: TaskRecord }> {
    const task = await this.getTask(taskId);
    if (!task.members.includes(tenant)) throw new FedmmError('PERMISSION_DENIED', `tenant ${tenant} is not a member of task ${taskId}`);
    const round = await getJson<RoundRecord>(this.d.store, roundKey(taskId, n));
    if (!round) throw new FedmmError('FAILED_PRECONDITION', `round ${n} of task ${taskId} is not open (the task is at round ${task.currentRound})`);
    const r = round.value;
    if (r.state !== 'open' && r.state !== 'collecting') throw new FedmmError('FAILED_PRECONDITION', `round ${n} of task ${taskId} is ${r.state}, not open for uploads`);
    if (!r.selected.includes(tenant)) throw new FedmmError('PERMISSION_DENIED', `tenant ${tenant} was not selected for round ${n} of task ${taskId}`);
    if (r.received.some((u) => u.tenant === tenant)) throw new FedmmError('ALREADY_EXISTS', `tenant ${tenant} already uploaded its update for round ${n} of task ${taskId}`);
    if (isSecureRound(r)) checkMaskedUploadAllowed(r, tenant);
    return { round: r, task };
  }

  /** The gateway reports an update that is fully in Kafka with its accept verdicts. */
  async updateReceived(taskId: string, n: number, u: ReceivedUpdate): Promise<void> {
    this.requireLeader();
    const shouldSeal = await this.mutex.run(taskId, async () => {
      const r = await this.getRound(taskId, n);
      if (!r.selected.includes(u.tenant)) throw new FedmmError('PERMISSION_DENIED', `tenant ${u.tenant} was not selected for round ${n}`);
      if (r.state !== 'open' && r.state !== 'collecting') throw new FedmmError('FAILED_PRECONDITION', `round ${n} of task ${taskId} is ${r.state}; the update arrived too late`);
      if (r.received.some((x) => x.tenant === u.tenant)) {
        if (r.received.some((x) => x.tenant === u.tenant && x.sha256 === u.sha256)) return false;
        throw new FedmmError('ALREADY_EXISTS', `tenant ${u.tenant} already has an update in round ${n}`);
      }
      // A masked upload is the stage-2 receipt of secure aggregation.
      if (isSecureRound(r)) checkMaskedUploadAllowed(r, u.tenant);
      const sc = trace.getSpan(context.active())?.spanContext();
      const withTrace: ReceivedUpdate = sc ? { ...u, trace: { traceId: sc.traceId, spanId: sc.spanId } } : u;
      const next: RoundRecord = { ...r, state: 'collecting', received: [...r.received, withTrace] };
      await this.fencedPut(roundKey(taskId, n), next);
      fedmmMetrics().updatesReceived.add(1, { task: taskId });
      await this.d.audit.append(taskId, 'update.received', { round: n, attempt: r.attempt, tenant: u.tenant, sha256: u.sha256, numExamples: u.numExamples, bytes: u.bytes }, 'gateway');
      if (!isSecureRound(next)) return next.received.length === next.selected.length;
      // Every instance still in the round collects; all who shared keys have uploaded.
      const live = secureGroups(next).filter((g) => g.stage !== 'failed');
      return live.every((g) => g.stage === 'collect-masked') && next.received.length === live.reduce((k, g) => k + g.shared.length, 0);
    });
    if (shouldSeal) await this.seal(taskId, n, 'all selected clients answered');
  }

  async cancelRound(taskId: string, n: number, reason: string): Promise<RoundRecord> {
    this.requireLeader();
    const r = await this.getRound(taskId, n);
    if (!ACTIVE_STATES.includes(r.state)) throw new FedmmError('FAILED_PRECONDITION', `round ${n} of task ${taskId} is already ${r.state}`);
    return this.failRound(r, `cancelled: ${reason || 'by an operator'}`, false);
  }

  private async seal(taskId: string, n: number, why: string): Promise<void> {
    await this.mutex.run(taskId, async () => {
      const r = await this.getRound(taskId, n);
      if (r.state !== 'open' && r.state !== 'collecting') return;
      const task = await this.getTask(taskId);
      const dropped = r.selected.filter((s) => !r.received.some((u) => u.tenant === s));
      if (r.received.length < Math.max(1, task.selection.minClients)) {
        await this.failRoundLocked(r, `only ${r.received.length} of ${r.selected.length} selected clients answered by the deadline; ${task.selection.minClients} needed`, true);
        return;
      }
      const end = await this.d.bus.endOffsets(Topics.updates);
      const sealed: RoundRecord = { ...r, state: 'aggregating', dropped, updateEndOffsets: Object.fromEntries(end.map((o) => [String(o.partition), o.offset])) };
      if (isSecureRound(sealed)) {
        // Secure round: collection is closed; it aggregates only once the survivors' shares are in (tick).
        const step = await this.secagg.closeCollection(task, sealed);
        if (step.kind === 'fail') {
          await this.failRoundLocked(r, step.reason, true);
          return;
        }
        if (step.kind !== 'update') return;
        await this.fencedPut(roundKey(taskId, n), { ...step.round, state: 'sealing' });
        const survivors = secureGroups(step.round).flatMap((g) => g.survivors).sort();
        await this.d.audit.append(taskId, 'round.unmasking', { round: n, attempt: r.attempt, survivors, why }, 'coordinator');
        this.d.log.info('secure round: collection closed, asking survivors for their shares', { task: taskId, round: n, survivors: survivors.length, why });
        this.observeStates();
        return;
      }
      await this.enterAggregating(sealed, why);
    });
  }

  /** Seal's last step: the round aggregates from now on; workers finish shards up to its end offsets. */
  private async enterAggregating(sealed: RoundRecord, why: string): Promise<void> {
    const { taskId, number: n, dropped, attempt } = sealed;
    await this.fencedPut(roundKey(taskId, n), sealed);
    const updateEndOffsets = Object.fromEntries(Object.entries(sealed.updateEndOffsets).map(([p, o]) => [Number(p), o]));
    await this.publishEvent(taskId, n, { $case: 'sealed', value: { received: sealed.received.map((u) => u.tenant), dropped, updateEndOffsets, attempt } });
    await this.d.audit.append(taskId, 'round.sealed', { round: n, attempt, received: sealed.received.map((u) => ({ tenant: u.tenant, sha256: u.sha256 })), dropped, why }, 'coordinator');
    this.d.log.info('round sealed', { task: taskId, round: n, received: sealed.received.length, dropped: dropped.length, why });
    this.observeStates();
  }

  /** Leader loop for a secure round: closes its protocol's sub-stages and, once unmasked, lets it aggregate. */
  private async advanceSecure(task: TaskRecord, n: number): Promise<void> {
    await this.mutex.run(task.taskId, async () => {
      const r = await this.getRound(task.taskId, n);
      if (!isSecureRound(r)) return;
      const isCollecting = r.state === 'open' || r.state === 'collecting';
      if (!isCollecting && r.state !== 'sealing') return;
      const step = isCollecting ? await this.secagg.advanceSetup(task, r) : await this.secagg.advanceUnmask(r);
      if (step.kind === 'fail') {
        await this.failRoundLocked(r, step.reason, true);
      } else if (step.kind === 'update') {
        await this.fencedPut(roundKey(task.taskId, n), step.round);
      } else if (step.kind === 'unmasked') {
        // Only the sums that unmask count: members of a group that fell short are dropouts.
        const survivors = new Set(unmaskedSurvivors(step.round));
        const received = step.round.received.filter((u) => survivors.has(u.tenant));
        if (received.length < Math.max(1, task.selection.minClients)) {
          await this.failRoundLocked(r, `secure aggregation failed: only ${received.length} clients are in groups that unmasked; ${task.selection.minClients} needed`, true);
          return;
        }
        const dropped = step.round.selected.filter((s) => !survivors.has(s));
        await this.enterAggregating({ ...step.round, state: 'aggregating', received, dropped }, 'survivors revealed their shares');
      }
    });
  }

  private async failRound(r: RoundRecord, reason: string, retry: boolean): Promise<RoundRecord> {
    return this.mutex.run(r.taskId, () => this.failRoundLocked(r, reason, retry));
  }

  private async failRoundLocked(r: RoundRecord, reason: string, retry: boolean): Promise<RoundRecord> {
    const task = await this.getTask(r.taskId);
    const willRetry = retry && r.attempt < (this.d.maxAttempts ?? 3);
    const failed: RoundRecord = { ...r, state: 'failed', failureReason: reason, closedAt: Date.now() };
    await this.fencedPut(roundKey(r.taskId, r.number), failed);
    await this.fencedDelete(activeKey(r.taskId));
    await this.secagg.cleanup(r, { discardGroupSums: true }).catch((e: unknown) => this.d.log.warn('cannot delete the secure-aggregation state of the round', { err: e }));
    await this.deleteAttemptState(r).catch((e: unknown) => this.d.log.warn('cannot delete the per-attempt state of the round', { err: e }));
    await this.d.registry.discardRoundShards(r.taskId, r.number, r.attempt).catch((e: unknown) => this.d.log.warn('cannot discard the staged shards of the failed attempt; registry garbage collection removes them later', { err: e }));
    if (r.reservationId) {
      await this.d.privacy.release(r.reservationId, reason).catch((e: unknown) => this.d.log.error('privacy release failed', { err: e }));
      await this.d.audit.append(r.taskId, 'budget.released', { round: r.number, attempt: r.attempt, reservationId: r.reservationId, reason }, 'coordinator');
    }
    if (!willRetry) await this.fencedPut(taskKey(r.taskId), { ...task, state: retry ? 'failed' : task.state === 'running' ? 'running' : task.state });
    await this.publishEvent(r.taskId, r.number, { $case: 'failed', value: { reason, willRetry } });
    await this.d.audit.append(r.taskId, 'round.failed', { round: r.number, attempt: r.attempt, reason, willRetry }, 'coordinator');
    fedmmMetrics().roundDuration.record((Date.now() - r.openedAt) / 1000, { task: r.taskId, state: 'failed' });
    this.d.log.warn('round failed', { task: r.taskId, round: r.number, attempt: r.attempt, reason, willRetry });
    this.observeStates();
    if (willRetry) setImmediate(() => void this.startRound(r.taskId, failed).catch((e: unknown) => this.d.log.error('retrying the round failed', { err: e })));
    return failed;
  }

  /** Leader loop: deadlines, and assembly of rounds whose shards are all finished. */
  private async tick(): Promise<void> {
    for (const { value: task } of await listJson<TaskRecord>(this.d.store, TASK_PREFIX)) {
      if (task.state !== 'running' || task.currentRound === 0) continue;
      const r = (await getJson<RoundRecord>(this.d.store, roundKey(task.taskId, task.currentRound)))?.value;
      if (!r) continue;
      if (isSecureRound(r) && (r.state === 'open' || r.state === 'collecting' || r.state === 'sealing')) await this.advanceSecure(task, r.number);
      if ((r.state === 'open' || r.state === 'collecting') && Date.now() >= r.deadlineAt) {
        await this.seal(task.taskId, r.number, 'deadline');
      } else if (r.state === 'aggregating') {
        if (createStrategy(task.strategy).coordination === 'distances') await this.selectForKrum(task, r);
        const done = (await this.d.store.list(shardResultPrefix(task.taskId, r.number, r.attempt))).map((e) => JSON.parse(e.value) as ShardDoneMarker);
        const broken = isSecureRound(r) && done.find((x) => x.failed !== undefined);
        if (broken) await this.failRound(r, `shard ${broken.shard} cannot be unmasked: ${broken.failed}`, true);
        else if (done.length >= r.numShards) await this.publish(task, r);
      }
    }
  }

  /** Krum's second phase: sums every shard's partial distances and picks the clients to average. */
  private async selectForKrum(task: TaskRecord, r: RoundRecord): Promise<void> {
    if (await this.d.store.get(selectionKey(task.taskId, r.number, r.attempt))) return;
    const parts = await this.d.store.list(distancesPrefix(task.taskId, r.number, r.attempt));
    if (parts.length < r.numShards) return;
    const partials = parts.map((e) => {
      const d = JSON.parse(e.value) as { clientIds: string[]; squared: number[]; squaredNorms: number[] };
      return { clientIds: d.clientIds, squared: Float64Array.from(d.squared), squaredNorms: Float64Array.from(d.squaredNorms) };
    });
    const cfg = task.strategy as { name: string; byzantine?: number; keep?: number };
    const selected = selectKrum(sumPartialDistances(partials), { byzantine: cfg.byzantine ?? 1, keep: cfg.name === 'multi-krum' ? (cfg.keep ?? 2) : 1 });
    await this.fencedPut(selectionKey(task.taskId, r.number, r.attempt), selected);
    await this.d.audit.append(task.taskId, 'aggregation.selection', { round: r.number, attempt: r.attempt, strategy: cfg.name, selected }, 'coordinator');
  }

  /** Every shard is staged at the registry: commit the spend, have the registry assemble the version, close the round. */
  private async publish(task: TaskRecord, r: RoundRecord): Promise<void> {
    await this.mutex.run(task.taskId, async () => {
      const cur = await this.getRound(task.taskId, r.number);
      if (cur.state !== 'aggregating' || cur.attempt !== r.attempt) return;
      let epsilonByTenant: Record<string, number> = {};
      if (r.reservationId) {
        const actual = task.privacy.mode === 'record'
          ? r.received.map((u) => ({ tenant: u.tenant, samplingRate: u.samplingRate || (task.clientConfig['sampling_rate'] ?? 0.1), noiseMultiplier: u.noiseMultiplier || task.privacy.noiseMultiplier, steps: u.steps || (task.clientConfig['local_steps'] ?? 10) }))
          : this.mechanismEvents(task, r.selected);
        epsilonByTenant = await this.d.privacy.commit(r.reservationId, actual);
        await this.d.audit.append(task.taskId, 'budget.committed', { round: r.number, attempt: r.attempt, reservationId: r.reservationId, epsilonByTenant }, 'coordinator');
      }
      const epsilonSpent = Object.values(epsilonByTenant).reduce((m, x) => Math.max(m, x), 0);
      // One round gathers many uploads: its publication is a span linked to each upload's trace.
      const links: Link[] = r.received.filter((u) => u.trace).map((u) => ({ context: { traceId: u.trace!.traceId, spanId: u.trace!.spanId, traceFlags: 1 } }));
      let version: VersionInfo;
      try {
        version = await trace.getTracer('@fedmm/aggregator').startActiveSpan('round publish', { links, attributes: { task: task.taskId, round: r.number } }, async (span) => {
          try {
            return await this.assembleAtRegistry(task, r, epsilonSpent);
          } finally {
            span.end();
          }
        });
      } catch (e) {
        // Done-markers without their staged shards (the registry lost them): only a new attempt can recompute them.
        if (isFedmmError(e) && e.code === 'FAILED_PRECONDITION') {
          await this.failRoundLocked(cur, `the registry cannot assemble the round's version: ${e.message}`, true);
          return;
        }
        throw e;
      }
      const now = Date.now();
      const published: RoundRecord = { ...cur, state: 'published', outputVersionId: version.versionId, closedAt: now, shardsDone: r.numShards };
      await this.fencedPut(roundKey(task.taskId, r.number), published);
      await this.fencedDelete(activeKey(task.taskId));
      await this.secagg.cleanup(r).catch((e: unknown) => this.d.log.warn('cannot delete the secure-aggregation state of the round', { err: e }));
      await this.deleteAttemptState(r).catch((e: unknown) => this.d.log.warn('cannot delete the per-attempt state of the round', { err: e }));
      const finished = r.number >= task.rounds;
      await this.fencedPut(taskKey(task.taskId), { ...task, latestVersionId: version.versionId, state: finished ? 'completed' : 'running' });
      const groupSums = r.secaggGroups?.filter((g) => g.stage === 'done').map((g) => ({ id: g.group, members: g.survivors }));
      await this.d.audit.append(task.taskId, 'aggregation.result', { round: r.number, attempt: r.attempt, shards: r.numShards, contributors: published.received.map((u) => u.tenant), ...(groupSums ? { groupSums } : {}) }, 'aggregator');
      await this.d.audit.append(task.taskId, 'version.published', { round: r.number, versionId: version.versionId }, 'registry');
      await this.publishEvent(task.taskId, r.number, { $case: 'published', value: { versionId: version.versionId, metrics: {} } });
      fedmmMetrics().roundDuration.record((now - r.openedAt) / 1000, { task: task.taskId, state: 'published' });
      this.d.log.info('round published', { task: task.taskId, round: r.number, version: version.versionId, seconds: (now - r.openedAt) / 1000 });
      this.observeStates();
      void this.d.valuation.scoreRound(task.taskId, r.number).catch((e: unknown) => this.d.log.warn('valuation of the round failed', { err: e }));
      if (!finished && (this.d.autoAdvance ?? true)) {
        setImmediate(() => void this.startRound(task.taskId).catch((e: unknown) => this.d.log.error('opening the next round failed', { err: e })));
      }
    });
  }


  private assembleAtRegistry(task: TaskRecord, r: RoundRecord, epsilonSpent: number): Promise<VersionInfo> {
    return this.d.registry.assembleRoundVersion({
      modelId: task.modelId,
      parentVersionId: r.inputVersionId,
      taskId: task.taskId,
      round: r.number,
      attempt: r.attempt,
      numShards: r.numShards,
      tensors: r.layout.tensors,
      lineage: {
        taskId: task.taskId,
        round: r.number,
        contributingClients: r.received.map((u) => u.tenant).sort(),
        strategy: task.strategy.name,
        privacy: { mode: task.privacy.mode, noiseMultiplier: task.privacy.noiseMultiplier, clipNorm: task.privacy.clipNorm, delta: task.privacy.delta, epsilonSpent, secureAggregation: task.privacy.secureAggregation },
      },
      metrics: { clients: r.received.length, examples: r.received.reduce((s, u) => s + u.numExamples, 0) },
    });
  }

  /**
   * Deletes what the round attempt kept in the store for its workers: done-markers and Krum's
   * distances and selection (the shard values live at the registry). Group sums are valuation's:
   * it deletes them once scored (a failed attempt's go with the secure-aggregation state).
   */
  private async deleteAttemptState(r: RoundRecord): Promise<void> {
    const keys = [
      ...(await this.d.store.list(shardResultPrefix(r.taskId, r.number, r.attempt))).map((e) => e.key),
      ...(await this.d.store.list(distancesPrefix(r.taskId, r.number, r.attempt))).map((e) => e.key),
      selectionKey(r.taskId, r.number, r.attempt),
    ];
    for (let i = 0; i < keys.length; i += 200) await this.d.store.atomic([this.d.lease.fence()], keys.slice(i, i + 200).map((key) => ({ key, value: null })));
  }

  private async publishEvent(taskId: string, round: number, event: epb.RoundEvent['event']): Promise<void> {
    const msg = epb.RoundEvent.encode(epb.RoundEvent.fromPartial({ taskId, round, event, timeUnixMs: Date.now() })).finish();
    await this.d.bus.publish(Topics.roundEvents, [{ key: taskId, value: msg }]);
  }

  private observeStates(): void {
    void (async () => {
      const counts = new Map<string, number>();
      for (const { value: t } of await listJson<TaskRecord>(this.d.store, TASK_PREFIX)) {
        for (const { value: r } of await listJson<RoundRecord>(this.d.store, roundPrefix(t.taskId))) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
      }
      for (const s of ['open', 'collecting', 'sealing', 'aggregating', 'published', 'failed']) fedmmMetrics().rounds.set(counts.get(s) ?? 0, { state: s });
    })().catch(() => undefined);
  }
}

/** A secure round takes a masked upload only from a client that completed its group's key exchange, while that group collects. */
function checkMaskedUploadAllowed(r: RoundRecord, tenant: string): void {
  const st = groupOfClient(r, tenant);
  if (!st) throw new FedmmError('PERMISSION_DENIED', `tenant ${tenant} is in no secure-aggregation group of round ${r.number} of task ${r.taskId}`);
  if (st.stage === 'failed') {
    throw new FedmmError('FAILED_PRECONDITION', `the secure-aggregation group of tenant ${tenant} in round ${r.number} of task ${r.taskId} fell below its threshold (${st.failure}); it sits this round out`);
  }
  if (st.stage === 'setup' || st.stage === 'share-keys') {
    throw new FedmmError('FAILED_PRECONDITION', `round ${r.number} of task ${r.taskId} is still exchanging secure-aggregation keys; upload the masked vector after the collect request (stage 2)`);
  }
  if (st.stage !== 'collect-masked') throw new FedmmError('FAILED_PRECONDITION', `round ${r.number} of task ${r.taskId} has closed collection; the update arrived too late`);
  if (!st.shared.includes(tenant)) {
    throw new FedmmError('FAILED_PRECONDITION', `tenant ${tenant} did not complete the secure-aggregation key exchange of round ${r.number} of task ${r.taskId}; its masked input could not be unmasked, so it sits this round out`);
  }
}

function strategyParams(task: TaskRecord): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(task.strategy)) if (typeof v === 'number') out[k] = v;
  return out;
}

