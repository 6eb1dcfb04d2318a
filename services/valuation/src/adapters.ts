import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { dataLoss, failedPrecondition } from '@fedmm/core';
import type { TensorMap } from '@fedmm/model';
import { crc32c, parseSafetensors, toFloat32 } from '@fedmm/tensor';
import { groupSumPrefix, roundKey, taskKey, GrpcRegistryPort, type GroupSumShard, type RoundRecord, type TaskRecord } from '@fedmm/aggregator-service';
import { registry as rpb } from '@fedmm/proto';
import { createRpcClient } from '@fedmm/service-kit';
import { getJson, storeKey, updateJson, type Store } from '@fedmm/store';
import type { AccessRuleSink, ContributionRepo, EvaluatorSource, ParamsSource, RoundSource, RoundView, SecureAggregates, TaskView } from './domain/ports.js';
import { layoutOf, unflatten } from './domain/scorer.js';
import type { VersionArtifact } from './domain/model-evaluator.js';
import type { ContributionState } from './domain/types.js';

/** The store key of a task's contribution state. */
export const contributionsKey = (taskId: string): string => storeKey('valuation', 'contributions', taskId);

/** Tasks and rounds as the aggregator's coordinator records them in the store. */
export function storeRoundSource(store: Store): RoundSource {
  return {
    async task(taskId) {
      const t = (await getJson<TaskRecord>(store, taskKey(taskId)))?.value;
      if (!t) return undefined;
      return {
        taskId: t.taskId,
        modelId: t.modelId,
        members: t.members,
        termsJson: t.termsJson,
        valuationMethod: t.valuationMethod ?? '',
        secureAggregation: t.privacy?.secureAggregation === true,
        secaggThreshold: t.privacy?.secaggThreshold ?? 0,
      };
    },
    async round(taskId, n) {
      const r = (await getJson<RoundRecord>(store, roundKey(taskId, n)))?.value;
      if (!r) return undefined;
      return {
        number: r.number,
        attempt: r.attempt,
        state: r.state,
        received: r.received.map((u) => ({ tenant: u.tenant, sha256: u.sha256, numExamples: u.numExamples, numShards: u.numShards })),
        inputVersionId: r.inputVersionId,
        outputVersionId: r.outputVersionId,
        layout: { tensors: r.layout.tensors.map((t) => ({ name: t.name, shape: t.shape, ...(t.modality ? { modality: t.modality } : {}) })) },
        ...(r.secaggGroups ? { secureGroups: r.secaggGroups.filter((g) => g.stage === 'done').map((g) => ({ id: g.group!, members: [...g.survivors].sort() })) } : {}),
      };
    },
  };
}

/** Contribution state as one JSON document per task, updated with compare-and-set. */
export function storeContributionRepo(store: Store): ContributionRepo {
  return {
    async get(taskId) {
      return (await getJson<ContributionState>(store, contributionsKey(taskId)))?.value;
    },
    async update(taskId, update) {
      const doc = await updateJson<ContributionState>(store, contributionsKey(taskId), (cur) => update(cur));
      return doc!.value;
    },
  };
}

/** Version tensors read from the registry (cached per version). */
export function registryParams(address: string, creds: ChannelCredentials): { params: ParamsSource; close(): void } {
  const port = new GrpcRegistryPort(address, creds);
  return { params: (versionId) => port.readTensors(versionId), close: () => port.close() };
}

/** Access rules set at the registry, which enforces them on download. */
export function registryAccessRules(address: string, creds: ChannelCredentials): { set: AccessRuleSink; close(): void } {
  const client = createRpcClient(rpb.RegistryServiceService, address, creds);
  return {
    set: async (rule) => {
      await client.setAccessRule({ rule: { modelId: rule.modelId, tenant: rule.tenant, versionDelayRounds: rule.versionDelayRounds, denied: false, tier: rule.tier } }, { deadlineMs: 10_000 });
    },
    close: () => client.close(),
  };
}

/**
 * Secure aggregation as the aggregator runs it today: one secure sum over every company of the
 * round, published as the new version. The only group is the whole round, its aggregate the
 * published delta (output minus input version); no individual update is ever involved.
 */
export function wholeRoundSecureAggregates(params: ParamsSource): SecureAggregates {
  return {
    async groups(_task, round) {
      return [{ id: `round-${round.number}`, members: round.received.map((r) => r.tenant).sort() }];
    },
    async aggregateOfGroups(_task, round, groupIds) {
      if (groupIds.length === 0) return new Map();
      const output = await params(round.outputVersionId);
      const input = round.inputVersionId ? await params(round.inputVersionId) : new Map<string, Float32Array>();
      const out = new Map<string, Float32Array>();
      for (const [name, o] of output) {
        const i = input.get(name);
        out.set(name, Float32Array.from(o, (x, k) => x - (i?.[k] ?? 0)));
      }
      return out;
    },
  };
}

/**
 * Secure aggregation as the aggregator runs it. With `secagg_group_size` the round's groups are the
 * ones that unmasked, and each group's sum is read from the documents the shard workers store per
 * (task, round, attempt, group, shard); the aggregate of a union of groups is the sum of their sums
 * over all of the round's survivors (the round's mean with the other groups' updates absent, so the
 * union of every group is the published step before any DP noise). A round without groups is one
 * group, valued as `wholeRoundSecureAggregates` does. No individual update is ever read: none is
 * stored, and every group holds at least the threshold.
 */
export function storeSecureAggregates(store: Store, params: ParamsSource): SecureAggregates {
  const whole = wholeRoundSecureAggregates(params);
  const cache = new Map<string, Promise<{ sums: Map<string, Float32Array>; survivors: number }>>();
  const keyOf = (task: TaskView, round: RoundView): string => `${task.taskId}/${round.number}/${round.attempt}`;
  const load = async (task: TaskView, round: RoundView): Promise<{ sums: Map<string, Float32Array>; survivors: number }> => {
    const layout = layoutOf(round);
    const sums = new Map<string, Float32Array>();
    let survivors = 0;
    for (const g of round.secureGroups!) {
      const flat = new Float32Array(layout.totalElements);
      let covered = 0;
      for (const e of await store.list(groupSumPrefix(task.taskId, round.number, round.attempt, g.id))) {
        const doc = JSON.parse(e.value) as GroupSumShard;
        if ([...doc.survivors].sort().join() !== g.members.join()) {
          throw failedPrecondition(`the stored sum of group ${g.id} in round ${round.number} of task ${task.taskId} covers [${doc.survivors.join(', ')}], the round record says [${g.members.join(', ')}]; the round cannot be valued`);
        }
        const b = Buffer.from(doc.values, 'base64');
        flat.set(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), doc.offset);
        covered += b.byteLength / 4;
      }
      if (covered !== layout.totalElements) {
        throw failedPrecondition(`the stored sum of group ${g.id} in round ${round.number} of task ${task.taskId} covers ${covered} of ${layout.totalElements} coordinates; it was deleted or never written, so the round cannot be valued`);
      }
      sums.set(g.id, flat);
      survivors += g.members.length;
    }
    return { sums, survivors };
  };
  const grouped = (round: RoundView): boolean => (round.secureGroups?.length ?? 0) > 0;
  return {
    async groups(task, round) {
      return grouped(round) ? round.secureGroups!.map((g) => ({ id: g.id, members: [...g.members] })) : whole.groups(task, round);
    },
    async aggregateOfGroups(task, round, groupIds) {
      if (!grouped(round)) return whole.aggregateOfGroups(task, round, groupIds);
      if (groupIds.length === 0) return new Map();
      const key = keyOf(task, round);
      let hit = cache.get(key);
      if (!hit) {
        if (cache.size >= 4) cache.delete(cache.keys().next().value!);
        hit = load(task, round);
        hit.catch(() => cache.delete(key));
        cache.set(key, hit);
      }
      const { sums, survivors } = await hit;
      const layout = layoutOf(round);
      const out = new Float32Array(layout.totalElements);
      for (const id of groupIds) {
        const sum = sums.get(id);
        if (!sum) throw failedPrecondition(`round ${round.number} of task ${task.taskId} has no secure-aggregation group ${id}`);
        for (let i = 0; i < out.length; i++) out[i]! += sum[i]! / survivors;
      }
      return unflatten(layout, out);
    },
    async release(task, round) {
      cache.delete(keyOf(task, round));
      if (!grouped(round)) return;
      for (const e of await store.list(groupSumPrefix(task.taskId, round.number, round.attempt))) await store.delete(e.key);
    },
  };
}

/** A task's validation set lives at `<dir>/<task>/manifest.jsonl`; tasks without one use the fallback. */
export function validationDirOf(dir: string, taskId: string): string | undefined {
  const d = join(dir, encodeURIComponent(taskId));
  return existsSync(join(d, 'manifest.jsonl')) ? d : undefined;
}

/** No validation sets anywhere: every task uses the fallback utility. */
export const noValidationSets: EvaluatorSource = () => Promise.resolve(undefined);

/** Version artifacts (tensors, metadata, kind and parent) downloaded from the registry; versions are immutable, so cached. */
export function registryArtifacts(address: string, creds: ChannelCredentials): { artifact: (versionId: string) => Promise<VersionArtifact>; close(): void } {
  const client = createRpcClient(rpb.RegistryServiceService, address, creds);
  const cache = new Map<string, Promise<VersionArtifact>>();
  const fetch = async (versionId: string): Promise<VersionArtifact> => {
    const parts: Buffer[] = [];
    let version: rpb.ModelVersion | undefined;
    await new Promise<void>((resolve, reject) => {
      const stream = client.downloadVersion({ versionId, offset: 0, tenant: '', chunkSize: 1024 * 1024 });
      stream.on('data', (m: rpb.DownloadVersionResponse) => {
        if (m.version) version = m.version;
        if (m.chunk) {
          if (crc32c(m.chunk.data) !== m.chunk.crc32c) {
            stream.cancel();
            reject(dataLoss(`chunk at ${m.chunk.offset} of version ${versionId} failed its CRC-32C check; retry`));
            return;
          }
          parts.push(Buffer.from(m.chunk.data));
        }
      });
      stream.on('error', reject);
      stream.on('end', () => resolve());
    });
    const bytes = Buffer.concat(parts);
    if (!version || bytes.byteLength !== version.artifactSize) throw dataLoss(`downloaded ${bytes.byteLength} bytes of version ${versionId}, expected ${version?.artifactSize ?? '?'}; retry`);
    const parsed = parseSafetensors(bytes);
    const tensors: TensorMap = new Map();
    for (const [name, t] of parsed.tensors) tensors.set(name, { shape: [...t.shape], data: Float32Array.from(toFloat32(t)) });
    return { kind: version.kind === rpb.ModelKind.MODEL_KIND_BASE ? 'base' : 'adapter', parentVersionId: version.parentVersionId, tensors, metadata: parsed.header.metadata ?? {} };
  };
  return {
    artifact: (versionId) => {
      let hit = cache.get(versionId);
      if (!hit) {
        if (cache.size >= 16) cache.delete(cache.keys().next().value!);
        hit = fetch(versionId);
        hit.catch(() => cache.delete(versionId));
        cache.set(versionId, hit);
      }
      return hit;
    },
    close: () => client.close(),
  };
}
