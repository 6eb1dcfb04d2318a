import { randomUUID } from 'node:crypto';
import { trace } from '@opentelemetry/api';
import { FedmmError, isFedmmError, repeat, type Logger, type Repeating } from '@fedmm/core';
import { Topics, type Bus, type BusMessage, type Consumer } from '@fedmm/bus';
import { getJson, listJson, type Store } from '@fedmm/store';
import {
  createStrategy, createServerOptimizerState, decodeServerOptimizerState, encodeServerOptimizerState,
  clippingScales,
  type ClippingShardAccumulator, type LinearShardAccumulator, type SelectionShardAccumulator, type ServerOptimizerState, type ShardAccumulator, type Strategy,
} from '@fedmm/aggregation';
import { addGaussianNoise } from '@fedmm/dp';
import {
  createLayout, decodeMaskedChunk, decodeUpdateChunk, decodeVerdict, isMaskedChunk, recordKind, shardAt, shardKey, type Shard, type TensorLayout,
} from '@fedmm/tensor';
import { MaskedSumAccumulator, type UnmaskPlan, type UnmaskPool } from '@fedmm/secagg';
import { fedmmMetrics } from '@fedmm/telemetry';
import { ACTIVE_PREFIX, distancesKey, groupSumKey, optimizerStateKey, roundKey, secaggPlanKey, selectionKey, shardResultKey, taskKey } from '../domain/keys.js';
import { groupOfClient, secureGroups } from '../secagg/driver.js';
import type { GroupSumShard, ShardDoneMarker } from '../domain/types.js';
import { decodePlan } from '../secagg/plan-codec.js';
import { finishMaskedShard, type MaskedGroupShard } from './masked-shard.js';
import type { RoundRecord, TaskRecord } from '../domain/types.js';
import type { RegistryPort } from '../ports/index.js';

export const WORKER_GROUP = 'fedmm-aggregator-workers';

interface Piece {
  elementOffset: number;
  values: Float32Array;
  /** Masked words of a secure round (then `values` is empty). */
  words?: Uint32Array;
}

interface RoundState {
  round: RoundRecord;
  task: TaskRecord;
  layout: TensorLayout;
  strategy: Strategy;
  /** One accumulator per shard this worker owns, for the round's attempt. */
  accumulators: Map<number, ShardAccumulator>;
  finished: Set<number>;
  /** Each client's update norm as the gateway measured it (for norm clipping). */
  norms: Map<string, number>;
  /** Shards whose partial distances this worker stored (Krum). */
  distancesStored: Set<number>;
  /** Secure rounds: the masked sum (mod 2^32) of each owned shard, per SecAgg+ instance (`shard/group`). */
  masked: Map<string, MaskedSumAccumulator>;
  /** Secure rounds: the coordinator's unmask plan of each instance (by group, '' for one instance), read once the round aggregates. */
  plans: Map<string, UnmaskPlan>;
}

export interface WorkerDeps {
  bus: Bus;
  store: Store;
  registry: RegistryPort;
  log: Logger;
  group?: string;
  /** How often the worker checks for rounds it can finish. */
  tickMs?: number;
  /** Threads that unmask a secure shard together; without it the worker's own thread unmasks. */
  unmaskPool?: UnmaskPool;
}

/** A shard's server optimizer moments (base64 of encodeServerOptimizerState), with the round attempt that produced them and the moments it started from. */
export interface SavedMoments {
  round: number;
  attempt: number;
  moments: string;
  /** Absent when the attempt started from fresh moments. */
  before?: string;
}

/**
 * The moments a shard of `round` starts from, given the last saved ones and, when they come from an
 * earlier round, that round's record: moments count only if the attempt that wrote them is the one
 * that published; otherwise (a failed attempt, or this round itself) the ones that attempt started from.
 */
export function startingMoments(doc: SavedMoments, round: Pick<RoundRecord, 'number' | 'attempt'>, producer: Pick<RoundRecord, 'state' | 'attempt'> | undefined): string | undefined {
  // Written by this round (a failed attempt, or this attempt when a shard is computed again): step from where it started.
  if (doc.round === round.number) return doc.before;
  return producer?.state === 'published' && producer.attempt === doc.attempt ? doc.moments : doc.before;
}

/**
 * An aggregation worker: one member of the consumer group on fedmm.updates. It keeps, for each
 * shard of the partitions it owns, one running accumulator per round; an upload's chunks wait in
 * a pending area only until the gateway's verdict for that shard arrives (a few records later in
 * the same partition). Offsets are committed only up to the start of the oldest round still in
 * progress, so a worker that dies is replaced by one that replays those rounds from Kafka and
 * folds the same records in the same order: the published version is the same.
 */
export class AggregationWorker {
  readonly id = randomUUID().slice(0, 8);
  private consumer: Consumer | undefined;
  /** Next offset to read, per partition this worker owns. */
  private readonly positions = new Map<number, bigint>();
  /** Bumped at every change of ownership: a record read before it does not move the positions after it. */
  private generation = 0;
  /** Pending chunks: `${task}/${round}/${client}/${sha}` -> shard -> seq -> piece. */
  private readonly pending = new Map<string, Map<number, Map<number, Piece>>>();
  /** Verdicts already applied: `${task}/${round}/${attempt}/${client}/${shard}`. */
  private readonly applied = new Set<string>();
  private readonly rounds = new Map<string, RoundState>();
  private readonly loadingRounds = new Map<string, Promise<RoundState | undefined>>();
  private ticks: Repeating | undefined;
  private readonly group: string;

  constructor(private readonly d: WorkerDeps) {
    this.group = d.group ?? WORKER_GROUP;
  }

  async start(): Promise<void> {
    await this.d.bus.ensureTopic(Topics.updates, { partitions: 8, maxMessageBytes: 2 * 1024 * 1024 }).catch(() => undefined);
    this.consumer = await this.d.bus.subscribe({
      group: this.group,
      topics: [Topics.updates],
      fromBeginning: true,
      handler: (msg) => this.onRecord(msg),
      onAssign: async (parts, consumer) => {
        // Any change of ownership starts this worker over from the committed offsets of every
        // partition it now owns: what it folded before may be replayed, and must not count twice.
        this.resetState();
        const committed = await this.d.bus.committedOffsets(this.group, Topics.updates).catch(() => []);
        // A group without commits needs nothing older than the oldest round in progress.
        const floors = await this.roundFloors();
        const ends = await this.d.bus.endOffsets(Topics.updates);
        for (const p of parts) {
          const c = committed.find((o) => o.partition === p.partition);
          const fresh = floors.get(p.partition) ?? BigInt(ends.find((o) => o.partition === p.partition)?.offset ?? '0');
          const start = c && BigInt(c.offset) >= 0n ? BigInt(c.offset) : fresh;
          this.positions.set(p.partition, start);
          consumer.seek(Topics.updates, p.partition, start.toString());
        }
        this.d.log.info('worker owns partitions', { worker: this.id, partitions: parts.map((p) => p.partition), from: Object.fromEntries([...this.positions].map(([p, o]) => [p, o.toString()])) });
      },
      onRevoke: async () => {
        this.resetState();
      },
    });
    this.ticks = repeat(async () => {
      try {
        await this.finishReady();
      } catch (e) {
        this.d.log.error('worker tick failed', { worker: this.id, err: e });
      }
    }, this.d.tickMs ?? 200);
  }

  async stop(): Promise<void> {
    await this.ticks?.stop();
    await this.consumer?.stop();
  }

  /** Per partition, the lowest start offset of any round in progress. */
  private async roundFloors(): Promise<Map<number, bigint>> {
    const floors = new Map<number, bigint>();
    for (const { value: a } of await listJson<{ taskId: string; round: number; attempt: number }>(this.d.store, ACTIVE_PREFIX)) {
      const round = (await getJson<RoundRecord>(this.d.store, roundKey(a.taskId, a.round)))?.value;
      if (!round) continue;
      for (const [p, off] of Object.entries(round.updateStartOffsets)) {
        const cur = floors.get(Number(p));
        if (cur === undefined || BigInt(off) < cur) floors.set(Number(p), BigInt(off));
      }
    }
    return floors;
  }

  private resetState(): void {
    this.generation++;
    this.positions.clear();
    this.pending.clear();
    this.applied.clear();
    this.rounds.clear();
    this.loadingRounds.clear();
  }

  private async onRecord(msg: BusMessage): Promise<void> {
    const generation = this.generation;
    try {
      if (recordKind(msg.headers) === 'verdict') await this.onVerdict(msg);
      else this.onChunk(msg);
    } catch (e) {
      // A malformed record is skipped, never fatal: the gateway validated what it produced.
      (msg.headers['fedmm-v'] === undefined ? this.d.log.debug : this.d.log.warn)('skipping an update record', { worker: this.id, partition: msg.partition, offset: msg.offset, err: e });
    } finally {
      // A record counts as read only once folded: a verdict still awaiting its round's state must hold back the shard's finish.
      if (generation === this.generation) this.positions.set(msg.partition, BigInt(msg.offset) + 1n);
    }
  }

  private onChunk(msg: BusMessage): void {
    if (isMaskedChunk(msg.headers)) {
      const m = decodeMaskedChunk(msg.headers, msg.value);
      this.pendingPieces(`${m.task}/${m.round}/${m.client}/${m.updateSha256 ?? ''}`, m.shard).set(m.seq, { elementOffset: m.elementOffset, values: new Float32Array(0), words: m.words });
      return;
    }
    const c = decodeUpdateChunk(msg.headers, msg.value, { requireFinite: true });
    if (c.dtype !== 'F32') throw new FedmmError('INVALID_ARGUMENT', `chunk dtype ${c.dtype}: the gateway publishes F32`);
    const key = `${c.task}/${c.round}/${c.client}/${c.updateSha256 ?? ''}`;
    let shards = this.pending.get(key);
    if (!shards) this.pending.set(key, (shards = new Map()));
    let seqs = shards.get(c.shard);
    if (!seqs) shards.set(c.shard, (seqs = new Map()));
    // A duplicate (same client, round, shard, seq) replaces itself: counted once.
    seqs.set(c.seq, { elementOffset: c.elementOffset, values: c.values as Float32Array });
  }

  private pendingPieces(key: string, shard: number): Map<number, Piece> {
    let shards = this.pending.get(key);
    if (!shards) this.pending.set(key, (shards = new Map()));
    let seqs = shards.get(shard);
    if (!seqs) shards.set(shard, (seqs = new Map()));
    return seqs;
  }

  private async onVerdict(msg: BusMessage): Promise<void> {
    const v = decodeVerdict(msg.headers);
    const pkey = `${v.task}/${v.round}/${v.client}/${v.updateSha256}`;
    const shards = this.pending.get(pkey);
    const pieces = shards?.get(v.shard);
    shards?.delete(v.shard);
    if (shards && shards.size === 0) this.pending.delete(pkey);
    if (!v.accept) return;
    const once = `${v.task}/${v.round}/${v.attempt}/${v.client}/${v.shard}`;
    if (this.applied.has(once)) return;
    const st = await this.roundState(v.task, v.round, v.attempt);
    if (!st) return; // the round already finished or was replaced by a newer attempt
    if (!pieces || pieces.size !== v.seqCount) {
      this.d.log.warn('an accepted upload is missing chunks in this partition', { task: v.task, round: v.round, client: v.client, shard: v.shard, have: pieces?.size ?? 0, want: v.seqCount });
      return;
    }
    const masked = [...pieces.values()].some((p) => p.words !== undefined);
    if (masked !== st.task.privacy.secureAggregation) {
      this.d.log.warn(masked ? 'a masked upload in a round without secure aggregation is ignored' : 'a plain upload in a secure round is ignored', { task: v.task, round: v.round, client: v.client, shard: v.shard });
      return;
    }
    this.applied.add(once);
    if (masked) {
      this.addMasked(st, v.shard, v.client, pieces);
      return;
    }
    st.norms.set(v.client, v.norm);
    const acc = this.accumulator(st, v.shard);
    const shard = shardAt(st.layout, v.shard, st.round.shardElements);
    const clip = st.task.privacy.mode === 'client' ? st.task.privacy.clipNorm : 0;
    const scale = clip > 0 && v.norm > clip ? clip / v.norm : 1;
    // Under client-level DP every client weighs the same, so one client moves the mean by at most C/K.
    const weight = clip > 0 ? 1 : v.numExamples;
    let bytes = 0;
    for (const seq of [...pieces.keys()].sort((a, b) => a - b)) {
      const p = pieces.get(seq)!;
      const local = p.elementOffset - shard.start;
      if (scale !== 1) (acc as LinearShardAccumulator).addScaled(v.client, local, p.values, weight, scale);
      else acc.add(v.client, local, p.values, weight);
      bytes += p.values.byteLength;
    }
    fedmmMetrics().aggregationBytes.add(bytes, { task: v.task });
  }

  /**
   * Adds a client's masked words to its group's sum of the shard, mod 2^32: masks cancel only
   * within a group. Memory stays O(shard x groups) whatever the number of clients.
   */
  private addMasked(st: RoundState, shardIndex: number, client: string, pieces: Map<number, Piece>): void {
    const group = groupOfClient(st.round, client);
    if (!group) {
      this.d.log.warn('a masked upload from a client in no secure-aggregation group is ignored', { task: st.task.taskId, round: st.round.number, client, shard: shardIndex });
      return;
    }
    const key = `${shardIndex}/${group.group ?? ''}`;
    let acc = st.masked.get(key);
    if (!acc) {
      const shard = shardAt(st.layout, shardIndex, st.round.shardElements);
      st.masked.set(key, (acc = new MaskedSumAccumulator(shard.start, shard.end - shard.start)));
    }
    let bytes = 0;
    for (const p of pieces.values()) {
      acc.add(client, p.words!, p.elementOffset);
      bytes += p.words!.byteLength;
    }
    fedmmMetrics().aggregationBytes.add(bytes, { task: st.task.taskId });
  }

  private accumulator(st: RoundState, shardIndex: number): ShardAccumulator {
    let acc = st.accumulators.get(shardIndex);
    if (!acc) {
      const shard = shardAt(st.layout, shardIndex, st.round.shardElements);
      acc = st.strategy.createShardAccumulator({ shardLength: shard.end - shard.start, segments: segmentsOf(shard) });
      st.accumulators.set(shardIndex, acc);
    }
    return acc;
  }

  /**
   * The worker's state of a round attempt, created once: the verdict handler and the finishing loop
   * ask concurrently, and two copies would split the folded updates between them.
   */
  private async roundState(taskId: string, n: number, attempt: number): Promise<RoundState | undefined> {
    const key = `${taskId}/${n}/${attempt}`;
    const have = this.rounds.get(key);
    if (have) return have;
    let loading = this.loadingRounds.get(key);
    if (!loading) {
      loading = this.loadRoundState(key, taskId, n, attempt).finally(() => this.loadingRounds.delete(key));
      this.loadingRounds.set(key, loading);
    }
    return loading;
  }

  private async loadRoundState(key: string, taskId: string, n: number, attempt: number): Promise<RoundState | undefined> {
    const generation = this.generation;
    const round = (await getJson<RoundRecord>(this.d.store, roundKey(taskId, n)))?.value;
    if (!round || round.attempt !== attempt || round.state === 'published' || round.state === 'failed') return undefined;
    const task = (await getJson<TaskRecord>(this.d.store, taskKey(taskId)))?.value;
    if (!task) return undefined;
    const layout = createLayout(round.layout.tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: t.shape, ...(t.modality ? { modality: t.modality } : {}) })));
    if (task.strategy.name !== 'fedavg' && task.strategy.name !== 'fedprox' && task.privacy.mode === 'client' && createStrategy(task.strategy).holdsAllValues) {
      throw new FedmmError('FAILED_PRECONDITION', `client-level DP clips updates inside linear strategies; ${task.strategy.name} is not linear`);
    }
    // Ownership changed while loading: the state belongs to the records of the new assignment.
    if (generation !== this.generation) return undefined;
    const st: RoundState = { round, task, layout, strategy: createStrategy(task.strategy), accumulators: new Map(), finished: new Set(), norms: new Map(), distancesStored: new Set(), masked: new Map(), plans: new Map() };
    this.rounds.set(key, st);
    return st;
  }

  /** Finishes the shards of aggregating rounds whose partitions this worker has read to the seal offsets. */
  private async finishReady(): Promise<void> {
    // Positions are taken before the rounds are listed: a round missing from the list opened after
    // this snapshot, so its records lie beyond it and committing up to the snapshot cannot skip them.
    const readTo = new Map(this.positions);
    const active = await listJson<{ taskId: string; round: number; attempt: number }>(this.d.store, ACTIVE_PREFIX);
    const owned = new Set(this.consumer?.assignment().map((a) => a.partition) ?? []);
    const live = new Set<string>();
    const minStart = new Map<number, bigint>();
    for (const { value: a } of active) {
      const round = (await getJson<RoundRecord>(this.d.store, roundKey(a.taskId, a.round)))?.value;
      if (!round || round.attempt !== a.attempt) continue;
      live.add(`${a.taskId}/${a.round}/${a.attempt}`);
      for (const [p, off] of Object.entries(round.updateStartOffsets)) {
        const cur = minStart.get(Number(p));
        if (cur === undefined || BigInt(off) < cur) minStart.set(Number(p), BigInt(off));
      }
      if (round.state !== 'aggregating') continue;
      const st = await this.roundState(a.taskId, a.round, a.attempt);
      if (!st) continue;
      st.round = round;
      for (let s = 0; s < round.numShards; s++) {
        if (st.finished.has(s)) continue;
        const p = await this.d.bus.partitionFor(Topics.updates, shardKey(round.number, s));
        if (!owned.has(p)) continue;
        const end = BigInt(round.updateEndOffsets[String(p)] ?? '0');
        if ((this.positions.get(p) ?? 0n) < end) continue;
        if (st.strategy.coordination === 'distances') {
          if (!st.distancesStored.has(s)) {
            const d = (this.accumulator(st, s) as SelectionShardAccumulator).partialDistances();
            await this.d.store.put(distancesKey(a.taskId, a.round, a.attempt, s), JSON.stringify({
              clientIds: d.clientIds, squared: Array.from(d.squared), squaredNorms: Array.from(d.squaredNorms),
            }));
            st.distancesStored.add(s);
          }
          if (!(await this.d.store.get(selectionKey(a.taskId, a.round, a.attempt)))) continue;
        }
        // A shard another owner finished before a rebalance is done: its result is staged at the registry.
        if (!(await this.d.store.get(shardResultKey(a.taskId, a.round, a.attempt, s)))) await this.finishShard(st, s);
        st.finished.add(s);
      }
    }
    for (const k of [...this.rounds.keys()]) if (!live.has(k)) this.rounds.delete(k);
    // Commit only what no round in progress may need again.
    if (this.consumer && owned.size > 0) {
      const commits = [];
      for (const p of owned) {
        const pos = readTo.get(p);
        if (pos === undefined) continue;
        const floor = minStart.get(p);
        const off = floor !== undefined && floor < pos ? floor : pos;
        commits.push({ topic: Topics.updates, partition: p, offset: off.toString() });
      }
      if (commits.length) await this.consumer.commit(commits);
    }
  }

  private async finishShard(st: RoundState, shardIndex: number): Promise<void> {
    const { round, task } = st;
    const shard = shardAt(st.layout, shardIndex, round.shardElements);
    const prevTensors = await this.d.registry.readTensors(round.inputVersionId);
    const previous = new Float32Array(shard.end - shard.start);
    for (const piece of shard.pieces) {
      const t = prevTensors.get(piece.name);
      if (t) previous.set(t.subarray(piece.start, piece.end), piece.flatStart - shard.start);
    }
    if (task.privacy.secureAggregation) {
      await this.finishSecureShard(st, shardIndex, previous);
      return;
    }
    const acc = this.accumulator(st, shardIndex);
    let optimizerState: ServerOptimizerState | undefined;
    const algo = task.strategy.name;
    let startMoments: string | undefined;
    if (algo === 'fedadam' || algo === 'fedyogi' || algo === 'fedadagrad') {
      startMoments = await this.momentsBefore(task.taskId, round, shardIndex);
      optimizerState = startMoments !== undefined
        ? decodeServerOptimizerState(Buffer.from(startMoments, 'base64'))
        : createServerOptimizerState(algo, shard.end - shard.start);
    }
    const contributors = acc.clientIds.length;
    const p = task.privacy;
    const perturb = p.mode === 'client' && p.noiseMultiplier > 0 && contributors > 0
      ? (mean: Float32Array) => {
          // Noise of std sigma*C on the sum is sigma*C/K on the mean the strategy steps with.
          const noisy = addGaussianNoise(mean, (p.noiseMultiplier * p.clipNorm) / contributors);
          mean.set(noisy);
        }
      : undefined;
    const context = { previous, ...(optimizerState ? { optimizerState } : {}), ...(perturb ? { perturb } : {}) };
    let values: Float32Array;
    if (contributors === 0) {
      values = previous;
    } else if (st.strategy.coordination === 'norms') {
      // Each client's norm over the whole update came with its verdicts.
      const clip = (task.strategy as { clipNorm?: number }).clipNorm ?? 0;
      values = (acc as ClippingShardAccumulator).finishWithScales(clippingScales(st.norms, clip), context);
    } else if (st.strategy.coordination === 'distances') {
      const sel = await this.d.store.get(selectionKey(task.taskId, round.number, round.attempt));
      if (!sel) throw new FedmmError('FAILED_PRECONDITION', 'the Krum selection is not ready');
      values = (acc as SelectionShardAccumulator).finishWithSelection(JSON.parse(sel.value) as string[], context);
    } else {
      values = acc.finish(context);
    }
    // The optimizer's new moments are saved with the done-marker, never before: a replay of the shard starts from the same moments.
    const state = optimizerState && contributors > 0
      ? {
        key: optimizerStateKey(task.taskId, shardIndex),
        value: JSON.stringify({
          round: round.number, attempt: round.attempt, moments: Buffer.from(encodeServerOptimizerState(optimizerState)).toString('base64'),
          ...(startMoments !== undefined ? { before: startMoments } : {}),
        } satisfies SavedMoments),
      }
      : undefined;
    await this.stageShard(st, shardIndex, values, contributors, state ? [state] : []);
  }

  /**
   * Secure round: unmasks this shard's range of each group that finished with the coordinator's
   * plans; a sum that cannot be unmasked fails the round. With groups, each group's sum over the
   * shard is stored for valuation before the shard's result, so a published round has all of them.
   */
  private async finishSecureShard(st: RoundState, shardIndex: number, previous: Float32Array): Promise<void> {
    const { round, task } = st;
    const groups: MaskedGroupShard[] = [];
    for (const g of secureGroups(round).filter((x) => x.stage === 'done')) {
      const id = g.group ?? '';
      let plan = st.plans.get(id);
      if (!plan) {
        const doc = await this.d.store.get(secaggPlanKey(task.taskId, round.number, round.attempt, g.group));
        if (!doc) throw new FedmmError('FAILED_PRECONDITION', `the unmask plan of secure round ${round.number} of task ${task.taskId}${g.group !== undefined ? ` (group ${g.group})` : ''} is not in the store`);
        st.plans.set(id, (plan = decodePlan(doc.value)));
      }
      groups.push({ ...(g.group !== undefined ? { group: g.group } : {}), acc: st.masked.get(`${shardIndex}/${id}`), plan });
    }
    let out: Awaited<ReturnType<typeof finishMaskedShard>>;
    try {
      out = await finishMaskedShard({ groups, previous, privacy: task.privacy, ...(this.d.unmaskPool ? { pool: this.d.unmaskPool } : {}) });
    } catch (e) {
      if (!(e instanceof FedmmError) || e.code !== 'FAILED_PRECONDITION') throw e;
      // The coordinator fails the round on this marker: a wrong sum must never be published.
      await this.d.store.put(shardResultKey(task.taskId, round.number, round.attempt, shardIndex), JSON.stringify({ shard: shardIndex, worker: this.id, failed: e.message } satisfies ShardDoneMarker));
      this.d.log.error('secure shard cannot be unmasked', { worker: this.id, task: task.taskId, round: round.number, shard: shardIndex, err: e });
      return;
    }
    for (const key of [...st.masked.keys()]) if (key.startsWith(`${shardIndex}/`)) st.masked.delete(key);
    if (round.secaggGroups) {
      const offset = shardAt(st.layout, shardIndex, round.shardElements).start;
      for (const g of out.groupSums) {
        const bytes = Buffer.from(g.sum.buffer, g.sum.byteOffset, g.sum.byteLength);
        await this.d.store.put(groupSumKey(task.taskId, round.number, round.attempt, g.group!, shardIndex), JSON.stringify({ group: g.group!, shard: shardIndex, offset, survivors: g.survivors, values: bytes.toString('base64') } satisfies GroupSumShard));
      }
    }
    await this.stageShard(st, shardIndex, out.values, out.contributors, []);
  }

  /**
   * The server optimizer's moments a shard of this round attempt starts from: the last ones a
   * published attempt wrote. Moments written by an attempt that failed are skipped for the ones that
   * attempt started from, so a retried round steps from the same state as its first attempt.
   */
  private async momentsBefore(taskId: string, round: RoundRecord, shardIndex: number): Promise<string | undefined> {
    const saved = await this.d.store.get(optimizerStateKey(taskId, shardIndex));
    if (!saved) return undefined;
    const doc = JSON.parse(saved.value) as SavedMoments;
    const producer = doc.round === round.number ? undefined : (await getJson<RoundRecord>(this.d.store, roundKey(taskId, doc.round)))?.value;
    return startingMoments(doc, round, producer);
  }

  /**
   * Puts the finished shard to the registry, which stages it for the round's version, then records
   * a small done-marker (with the shard's other writes, atomically) for the coordinator. A shard
   * already staged with other bytes (a replay that drew other DP noise) keeps the staged bytes: the
   * round publishes one draw per shard, the first.
   */
  private async stageShard(st: RoundState, shardIndex: number, values: Float32Array, contributors: number, writes: { key: string; value: string }[]): Promise<void> {
    const { round, task } = st;
    const marker = shardResultKey(task.taskId, round.number, round.attempt, shardIndex);
    const shard = shardAt(st.layout, shardIndex, round.shardElements);
    try {
      // The put is its own trace (the shard's updates came from many uploads); the registry's handling joins it.
      await trace.getTracer('@fedmm/aggregator').startActiveSpan('shard stage', { attributes: { task: task.taskId, round: round.number, attempt: round.attempt, shard: shardIndex } }, async (span) => {
        try {
          await this.d.registry.putRoundShard({ modelId: task.modelId, taskId: task.taskId, round: round.number, attempt: round.attempt, shard: shardIndex, elementOffset: shard.start, contributors, values });
        } finally {
          span.end();
        }
      });
    } catch (e) {
      if (!isFedmmError(e) || e.code !== 'ALREADY_EXISTS') throw e;
      this.d.log.warn('the shard was already staged with other bytes by an earlier owner; that result stands', { worker: this.id, task: task.taskId, round: round.number, attempt: round.attempt, shard: shardIndex });
    }
    const done = await this.d.store.atomic([{ key: marker, version: 0 }], [...writes, { key: marker, value: JSON.stringify({ shard: shardIndex, contributors, worker: this.id } satisfies ShardDoneMarker) }]);
    if (!done) return; // another owner recorded it first
    await this.d.bus.publish(Topics.shardResults, [{ key: `${task.taskId}/${round.number}`, value: new Uint8Array(0), headers: { 'fedmm-task': task.taskId, 'fedmm-round': String(round.number), 'fedmm-attempt': String(round.attempt), 'fedmm-shard': String(shardIndex), 'fedmm-contributors': String(contributors) } }]);
    this.d.log.debug('shard finished', { worker: this.id, task: task.taskId, round: round.number, shard: shardIndex, contributors });
  }
}

function segmentsOf(shard: Shard): { tensor: string; start: number; length: number }[] {
  return shard.pieces.map((p) => ({ tensor: p.name, start: p.flatStart - shard.start, length: p.end - p.start }));
}
