import { FedmmError, KeyedMutex, type Logger } from '@fedmm/core';
import { getJson, listJson, storeKey, updateJson, type Store } from '@fedmm/store';
import { SafetensorsFile, createLayout, isParamDType, planSafetensors } from '@fedmm/tensor';
import type { BlobStore, BlobWriter } from './blobs.js';
import type { RoundAttemptId, RoundStaging, StagedShard, StagedShardHeader, StagedShardWriter } from './round-staging.js';
import type { AccessRuleRecord, LayoutInfo, ModelRecord, NewRoundVersion, NewVersion, Stage, VersionRecord } from './types.js';

const MODEL_ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;

const modelKey = (id: string): string => storeKey('registry', 'model', id);
const versionKey = (id: string): string => storeKey('registry', 'version', id);
const VERSION_PREFIX = storeKey('registry', 'version', '');
const seqKey = (id: string): string => storeKey('registry', 'seq', id);
const accessKey = (modelId: string, tenant: string): string => storeKey('registry', 'access', modelId, tenant);
/** The version a round attempt was assembled into: what makes assembly idempotent. */
const roundVersionKey = (a: RoundAttemptId): string => storeKey('registry', 'round-version', a.taskId, String(a.round), String(a.attempt));
const roundVersionPrefix = (taskId: string, round: number): string => storeKey('registry', 'round-version', taskId, String(round), '');
/** Settings of the parent's artifact that a round's version does not inherit: they describe the round or the tensors. */
const ROUND_METADATA = /^fedmm\.(task|round|modality\.|scale\.)/;
const STREAM_CHUNK = 1024 * 1024;

export interface RegistryOptions {
  /** Staged shards of an attempt untouched this long are garbage (its coordinator gave up on it). */
  stagedTtlMs?: number;
}

/** Registry domain: models, versions with lineage, content-addressed artifacts and access rules. */
export class Registry {
  private readonly mutex = new KeyedMutex();
  private readonly stagedTtlMs: number;
  constructor(private readonly store: Store, private readonly blobs: BlobStore, private readonly log: Logger, private readonly staging: RoundStaging, options: RegistryOptions = {}) {
    this.stagedTtlMs = options.stagedTtlMs ?? 7 * 24 * 3600 * 1000;
  }

  async createModel(input: { modelId: string; description: string; configJson: string }): Promise<ModelRecord> {
    if (!MODEL_ID.test(input.modelId)) {
      throw new FedmmError('INVALID_ARGUMENT', `model id ${JSON.stringify(input.modelId)} is not valid: use 1-63 lower-case letters, digits, '.', '_' or '-'`);
    }
    if (input.configJson) {
      try {
        JSON.parse(input.configJson);
      } catch {
        throw new FedmmError('INVALID_ARGUMENT', `config_json of model ${input.modelId} is not valid JSON`);
      }
    }
    const rec: ModelRecord = { modelId: input.modelId, description: input.description, configJson: input.configJson, createdAt: Date.now() };
    const v = await this.store.compareAndSet(modelKey(input.modelId), 0, JSON.stringify(rec));
    if (v === undefined) {
      const existing = await this.getModel(input.modelId);
      if (existing.configJson === rec.configJson && existing.description === rec.description) return existing;
      throw new FedmmError('ALREADY_EXISTS', `model ${input.modelId} already exists with another configuration; choose another id`);
    }
    return rec;
  }

  async getModel(modelId: string): Promise<ModelRecord> {
    const doc = await getJson<ModelRecord>(this.store, modelKey(modelId));
    if (!doc) throw new FedmmError('NOT_FOUND', `model ${JSON.stringify(modelId)} does not exist; create it first (fedmm model pretrain or CreateModel)`);
    return doc.value;
  }

  async listModels(): Promise<ModelRecord[]> {
    return (await listJson<ModelRecord>(this.store, storeKey('registry', 'model', ''))).map((e) => e.value);
  }

  /** Starts an artifact upload; the caller appends bytes and then calls finishUpload. */
  async beginUpload(modelId: string, maxBytes: number, announcedSize: number): Promise<BlobWriter> {
    await this.getModel(modelId);
    if (announcedSize > maxBytes) {
      throw new FedmmError('RESOURCE_EXHAUSTED', `artifact of ${announcedSize} bytes exceeds the registry limit of ${maxBytes} bytes (FEDMM_REGISTRY_MAX_ARTIFACT_BYTES)`);
    }
    return this.blobs.writer();
  }

  /** Verifies the uploaded artifact, reads its layout and records the version. */
  async finishUpload(writer: BlobWriter, input: NewVersion): Promise<VersionRecord> {
    const blob = await writer.commit({ sha256: input.artifactSha256, size: input.artifactSize });
    const layout = await this.layoutOf(blob.path);
    return this.recordVersion({ ...input, artifactSha256: blob.sha256, artifactSize: blob.size }, layout);
  }

  private async layoutOf(path: string): Promise<LayoutInfo> {
    const file = await SafetensorsFile.open(path);
    try {
      const meta = file.header.metadata ?? {};
      const tensors = file.header.entries.map((e) => {
        if (!isParamDType(e.dtype)) throw new FedmmError('INVALID_ARGUMENT', `artifact tensor ${e.name} has dtype ${e.dtype}; model tensors are F32, F16, BF16 or I8`);
        const modality = meta[`fedmm.modality.${e.name}`];
        return { name: e.name, dtype: e.dtype, shape: [...e.shape], ...(modality ? { modality } : {}), ...(e.scale !== undefined ? { scale: e.scale } : {}) };
      });
      const layout = createLayout(tensors);
      return { tensors, fingerprint: layout.fingerprint };
    } finally {
      await file.close();
    }
  }

  private async recordVersion(input: NewVersion, layout: LayoutInfo, round?: RoundAttemptId): Promise<VersionRecord> {
    return this.mutex.run(input.modelId, async () => {
      if (input.parentVersionId) await this.getVersion(input.parentVersionId);
      const number = await this.store.increment(seqKey(input.modelId), 1);
      const versionId = `${input.modelId}@${number}`;
      const rec: VersionRecord = {
        versionId,
        modelId: input.modelId,
        number,
        kind: input.kind,
        parentVersionId: input.parentVersionId,
        ...(input.lineage ? { lineage: input.lineage } : {}),
        metrics: input.metrics,
        artifactSha256: input.artifactSha256,
        artifactSize: input.artifactSize,
        stage: 'candidate',
        createdAt: Date.now(),
        layout,
      };
      if (round) {
        // The version and its round index appear together: a retried assembly finds the version, never makes a second.
        const ok = await this.store.atomic([{ key: roundVersionKey(round), version: 0 }], [{ key: versionKey(versionId), value: JSON.stringify(rec) }, { key: roundVersionKey(round), value: JSON.stringify({ versionId }) }]);
        if (!ok) throw new FedmmError('ABORTED', `round ${round.round} attempt ${round.attempt} of task ${round.taskId} was assembled concurrently; call AssembleRoundVersion again for its version`);
      } else {
        await this.store.put(versionKey(versionId), JSON.stringify(rec));
      }
      this.log.info('version recorded', { versionId, sha256: rec.artifactSha256, bytes: rec.artifactSize, round: rec.lineage?.round });
      return rec;
    });
  }

  // ---- rounds: staged shards and assembly ----

  /** Starts receiving one finished shard of a round; it stays staged until the round's version is assembled. */
  async beginRoundShard(h: StagedShardHeader, maxBytes: number): Promise<StagedShardWriter> {
    await this.getModel(h.modelId);
    if (h.elementCount * 4 > maxBytes) {
      throw new FedmmError('RESOURCE_EXHAUSTED', `shard of ${h.elementCount * 4} bytes exceeds the registry limit of ${maxBytes} bytes (FEDMM_REGISTRY_MAX_ARTIFACT_BYTES)`);
    }
    const done = await getJson<{ versionId: string }>(this.store, roundVersionKey(h));
    if (done) throw new FedmmError('FAILED_PRECONDITION', `round ${h.round} attempt ${h.attempt} of task ${h.taskId} is already version ${done.value.versionId}; its shards are no longer staged`);
    return this.staging.writer(h);
  }

  /**
   * Writes a round's version from its staged shards: the safetensors header first, then each
   * shard's bytes in index order (the layout's order is the file's data order, all F32), streamed
   * from the parts so the model is never held; then records it with its lineage and drops the parts.
   */
  async assembleRoundVersion(input: NewRoundVersion): Promise<{ version: VersionRecord; alreadyAssembled: boolean }> {
    const attempt: RoundAttemptId = { taskId: input.taskId, round: input.round, attempt: input.attempt };
    const where = `round ${input.round} attempt ${input.attempt} of task ${input.taskId}`;
    return this.mutex.run(roundVersionKey(attempt), async () => {
      const done = await getJson<{ versionId: string }>(this.store, roundVersionKey(attempt));
      if (done) {
        await this.staging.discardRound(input.taskId, input.round);
        return { version: await this.getVersion(done.value.versionId), alreadyAssembled: true };
      }
      await this.getModel(input.modelId);
      const parent = await this.getVersion(input.parentVersionId);
      if (parent.modelId !== input.modelId) throw new FedmmError('INVALID_ARGUMENT', `parent version ${parent.versionId} belongs to model ${parent.modelId}, not ${input.modelId}`);
      const layout = createLayout(input.tensors.map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, ...(t.modality ? { modality: t.modality } : {}) })));
      if (!Number.isSafeInteger(input.numShards) || input.numShards < 1) throw new FedmmError('INVALID_ARGUMENT', `num_shards ${input.numShards} must be a positive integer`);
      const parts = await this.stagedParts(attempt, input.numShards, input.modelId, layout.totalElements, where);

      const metadata: Record<string, string> = {};
      const parentFile = await SafetensorsFile.open(this.blobs.pathOf(parent.artifactSha256));
      try {
        for (const [k, v] of Object.entries(parentFile.header.metadata ?? {})) if (!ROUND_METADATA.test(k)) metadata[k] = v;
      } finally {
        await parentFile.close();
      }
      metadata['fedmm.task'] = input.taskId;
      metadata['fedmm.round'] = String(input.round);
      for (const e of layout.entries) if (e.modality) metadata[`fedmm.modality.${e.name}`] = e.modality;
      const plan = planSafetensors(layout.entries.map((e) => ({ name: e.name, dtype: 'F32' as const, shape: e.shape })), metadata);

      const writer = await this.blobs.writer();
      let blob: { sha256: string; size: number; path: string };
      try {
        await writer.append(plan.header);
        for (const p of parts) for await (const chunk of this.staging.readData(p, STREAM_CHUNK)) await writer.append(chunk);
        if (writer.bytesWritten !== plan.totalLength) throw new FedmmError('DATA_LOSS', `${where}: wrote ${writer.bytesWritten} bytes, the artifact has ${plan.totalLength}; the staged shards changed while assembling — assemble again`);
        blob = await writer.commit();
      } catch (e) {
        await writer.abort();
        throw e;
      }
      const version = await this.recordVersion({
        modelId: input.modelId,
        kind: 'adapter',
        parentVersionId: input.parentVersionId,
        ...(input.lineage ? { lineage: input.lineage } : {}),
        metrics: input.metrics,
        artifactSha256: blob.sha256,
        artifactSize: blob.size,
      }, await this.layoutOf(blob.path), attempt);
      await this.staging.discardRound(input.taskId, input.round);
      this.log.info('round version assembled', { versionId: version.versionId, task: input.taskId, round: input.round, attempt: input.attempt, shards: parts.length });
      return { version, alreadyAssembled: false };
    });
  }

  /** Every shard of the attempt, checked to tile the layout [0, total) in index order. */
  private async stagedParts(a: RoundAttemptId, numShards: number, modelId: string, totalElements: number, where: string): Promise<StagedShard[]> {
    const parts: StagedShard[] = [];
    const missing: number[] = [];
    for (let i = 0; i < numShards; i++) {
      const p = await this.staging.read(a, i);
      if (p) parts.push(p);
      else missing.push(i);
    }
    if (missing.length > 0) {
      const names = missing.length > 20 ? `${missing.slice(0, 20).join(', ')} and ${missing.length - 20} more` : missing.join(', ');
      throw new FedmmError('FAILED_PRECONDITION', `${where} has no staged shard ${names} (of ${numShards}); the workers that own them must put them (PutRoundShard) first`, { missing });
    }
    let next = 0;
    for (const p of parts) {
      const h = p.header;
      if (h.modelId !== modelId) throw new FedmmError('FAILED_PRECONDITION', `${where}: shard ${h.shard} was staged for model ${h.modelId}, not ${modelId}`);
      if (h.elementOffset !== next) throw new FedmmError('FAILED_PRECONDITION', `${where}: shard ${h.shard} starts at element ${h.elementOffset}, but the shards before it end at ${next}; the shards do not tile the layout`);
      next += h.elementCount;
    }
    if (next !== totalElements) throw new FedmmError('FAILED_PRECONDITION', `${where}: the ${numShards} staged shards hold ${next} elements, the layout has ${totalElements}`);
    return parts;
  }

  /** Drops the staged shards of a round attempt that will not be assembled. */
  async discardRoundShards(a: RoundAttemptId): Promise<number> {
    return this.mutex.run(roundVersionKey(a), () => this.staging.discard(a));
  }

  async getVersion(versionId: string): Promise<VersionRecord> {
    const doc = await getJson<VersionRecord>(this.store, versionKey(versionId));
    if (!doc) throw new FedmmError('NOT_FOUND', `model version ${JSON.stringify(versionId)} does not exist; list versions with fedmm model versions`);
    return doc.value;
  }

  async listVersions(modelId: string, tenant?: string): Promise<VersionRecord[]> {
    const all = (await listJson<VersionRecord>(this.store, modelId ? `${VERSION_PREFIX}${modelId}@` : VERSION_PREFIX)).map((e) => e.value)
      .filter((v) => !modelId || v.modelId === modelId)
      .sort((a, b) => a.modelId.localeCompare(b.modelId) || a.number - b.number);
    if (!tenant) return all;
    const out: VersionRecord[] = [];
    for (const v of all) if ((await this.accessDecision(v, tenant, all)).allowed) out.push(v);
    return out;
  }

  async promote(versionId: string, stage: Stage): Promise<VersionRecord> {
    const res = await updateJson<VersionRecord>(this.store, versionKey(versionId), (cur) => {
      if (!cur) throw new FedmmError('NOT_FOUND', `model version ${versionId} does not exist`);
      return { ...cur, stage };
    });
    // One production version per model: promoting one archives the previous.
    if (stage === 'production' && res) {
      for (const v of await this.listVersions(res.value.modelId)) {
        if (v.versionId !== versionId && v.stage === 'production') await this.promote(v.versionId, 'archived');
      }
    }
    return res!.value;
  }

  async setAccessRule(rule: AccessRuleRecord): Promise<AccessRuleRecord> {
    await this.getModel(rule.modelId);
    if (!rule.tenant) throw new FedmmError('INVALID_ARGUMENT', 'an access rule needs a tenant');
    if (!Number.isInteger(rule.versionDelayRounds) || rule.versionDelayRounds < 0) {
      throw new FedmmError('INVALID_ARGUMENT', `version_delay_rounds must be a non-negative integer, got ${rule.versionDelayRounds}`);
    }
    await this.store.put(accessKey(rule.modelId, rule.tenant), JSON.stringify(rule));
    return rule;
  }

  async getAccessRule(modelId: string, tenant: string): Promise<AccessRuleRecord | undefined> {
    return (await getJson<AccessRuleRecord>(this.store, accessKey(modelId, tenant)))?.value;
  }

  /** Whether a tenant may download a version under its access rule (base versions: unless denied). */
  async accessDecision(v: VersionRecord, tenant: string, known?: VersionRecord[]): Promise<{ allowed: boolean; reason: string }> {
    const rule = await this.getAccessRule(v.modelId, tenant);
    if (!rule) return { allowed: true, reason: 'no rule' };
    if (rule.denied) return { allowed: false, reason: `tenant ${tenant} has no access to model ${v.modelId} (tier ${rule.tier || 'none'})` };
    if (v.kind === 'base' || rule.versionDelayRounds === 0) return { allowed: true, reason: 'tier allows' };
    const versions = known ?? (await this.listVersions(v.modelId));
    const latest = versions.filter((x) => x.kind === 'adapter').reduce((m, x) => Math.max(m, x.lineage?.round ?? 0), 0);
    const round = v.lineage?.round ?? 0;
    if (round + rule.versionDelayRounds <= latest) return { allowed: true, reason: 'delay passed' };
    return { allowed: false, reason: `tier ${rule.tier || 'delayed'} of tenant ${tenant} may download round ${round}'s version once round ${round + rule.versionDelayRounds} is published (now ${latest})` };
  }

  /** Opens a version for download by a tenant (empty tenant: operator) from an offset. */
  async openDownload(versionId: string, tenant: string, offset: number, chunkSize: number): Promise<{ version: VersionRecord; chunks: AsyncIterable<Buffer> }> {
    const version = await this.getVersion(versionId);
    if (tenant) {
      const d = await this.accessDecision(version, tenant);
      if (!d.allowed) throw new FedmmError('PERMISSION_DENIED', d.reason);
    }
    if (offset < 0 || offset > version.artifactSize) {
      throw new FedmmError('OUT_OF_RANGE', `offset ${offset} is outside the artifact of ${version.artifactSize} bytes; resume from 0..${version.artifactSize}`);
    }
    return { version, chunks: offset === version.artifactSize ? (async function* () {})() : this.blobs.read(version.artifactSha256, offset, chunkSize) };
  }

  /**
   * Removes blobs that no version references, and staged round shards no assembly will read: those
   * of rounds that already have a version, and those untouched for longer than the staged TTL.
   */
  async collectGarbage(dryRun: boolean, now = Date.now()): Promise<{ removed: string[]; bytesFreed: number; removedRoundAttempts: string[] }> {
    const referenced = new Set((await this.listVersions('')).map((v) => v.artifactSha256));
    const removed: string[] = [];
    let bytesFreed = 0;
    for (const b of await this.blobs.list()) {
      if (referenced.has(b.sha256)) continue;
      removed.push(b.sha256);
      bytesFreed += b.size;
      if (!dryRun) await this.blobs.remove(b.sha256);
    }
    const removedRoundAttempts: string[] = [];
    for (const s of await this.staging.list()) {
      const a = s.attempt;
      const assembled = (await this.store.list(roundVersionPrefix(a.taskId, a.round), 1)).length > 0;
      if (!assembled && now - s.newestMs < this.stagedTtlMs) continue;
      removedRoundAttempts.push(`${a.taskId}/${a.round}/${a.attempt}`);
      bytesFreed += s.bytes;
      if (!dryRun) await this.discardRoundShards(a);
    }
    return { removed, bytesFreed, removedRoundAttempts };
  }
}
