import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { FedmmError, type Logger } from '@fedmm/core';
import { registry as rpb } from '@fedmm/proto';
import { BASE_METADATA_KEYS, loadBase, type AdapterSet, type BaseModel, type TensorMap } from '@fedmm/model';
import { parseSafetensors, sha256HexOfFile, toFloat32 } from '@fedmm/tensor';
import { writeFileAtomic } from './atomic-file.js';
import type { GatewayConnection } from './connection.js';

/** Metadata keys of an adapter artifact that carry the LoRA hyper-parameters (safetensors `__metadata__`). */
export const ADAPTER_METADATA_KEYS = Object.freeze({ rank: 'fedmm.lora.rank', alpha: 'fedmm.lora.alpha' });

/** What the agent remembers about a version without downloading it again. */
export interface VersionRecord {
  readonly versionId: string;
  readonly kind: 'base' | 'adapter';
  readonly parentVersionId: string;
  readonly sha256: string;
  readonly size: number;
  /** tensor name -> modality ("" for shared), from the version's layout. */
  readonly modalities: Readonly<Record<string, string>>;
}

/** A parsed artifact: float32 tensors and the `__metadata__` strings. */
export interface Artifact {
  readonly tensors: TensorMap;
  readonly metadata: Readonly<Record<string, string>>;
}

/** The starting point of a round: the frozen base and the round's global adapters. */
export interface RoundModel {
  readonly base: BaseModel;
  /** The base version's artifact file (cached by sha256), for a worker thread that loads its own copy. */
  readonly baseFile: string;
  readonly baseVersionId: string;
  readonly inputVersionId: string;
  readonly adapters: AdapterSet;
  /** tensor name -> modality of the round's layout. */
  readonly modalities: Readonly<Record<string, string>>;
}

const MAX_CHAIN = 100_000;

/** Reads a safetensors file into float32 tensors. */
export function readArtifact(file: string): Artifact {
  const parsed = parseSafetensors(readFileSync(file));
  const tensors: TensorMap = new Map();
  for (const [name, t] of parsed.tensors) tensors.set(name, { shape: [...t.shape], data: Float32Array.from(toFloat32(t)) });
  return { tensors, metadata: parsed.header.metadata ?? {} };
}

/** Rank of an adapter artifact: the first dimension of any `lora_A` tensor. */
function rankOf(tensors: TensorMap): number {
  for (const [name, t] of tensors) if (name.endsWith('.lora_A')) return t.shape[0]!;
  throw new FedmmError('FAILED_PRECONDITION', 'the adapter version holds no lora_A tensor; it is not a LoRA adapter version');
}

/**
 * Downloads and caches model versions in the work dir: artifacts by sha256 (a version already on
 * disk with the right digest is never fetched again), version metadata in versions.json, and the
 * loaded base model in memory. Resolves a round's input version to its base by following parents.
 */
export class ModelSource {
  readonly #conn: GatewayConnection;
  readonly #dir: string;
  readonly #log: Logger;
  readonly #indexFile: string;
  #index: Record<string, VersionRecord>;
  #base: { versionId: string; model: BaseModel; file: string } | undefined;
  #taskId = '';

  constructor(conn: GatewayConnection, workDir: string, log: Logger) {
    this.#conn = conn;
    this.#dir = join(workDir, 'artifacts');
    this.#log = log;
    this.#indexFile = join(workDir, 'versions.json');
    this.#index = existsSync(this.#indexFile) ? (JSON.parse(readFileSync(this.#indexFile, 'utf8')) as Record<string, VersionRecord>) : {};
  }

  /** Names the task whose round the next downloads are for (a selected member may fetch its round's input whatever its tier). */
  useTask(taskId: string): void {
    this.#taskId = taskId;
  }

  /** A version's record, asking the gateway only the first time. */
  async describe(versionId: string, signal?: AbortSignal): Promise<VersionRecord> {
    const known = this.#index[versionId];
    if (known) return known;
    return this.#remember(await this.#conn.describeVersion(versionId, signal, this.#taskId));
  }

  #remember(v: rpb.ModelVersion): VersionRecord {
    const rec: VersionRecord = {
      versionId: v.versionId,
      kind: v.kind === rpb.ModelKind.MODEL_KIND_BASE ? 'base' : 'adapter',
      parentVersionId: v.parentVersionId,
      sha256: v.artifactSha256,
      size: v.artifactSize,
      modalities: Object.fromEntries((v.layout?.tensors ?? []).map((t) => [t.name, t.modality])),
    };
    this.#index = { ...this.#index, [v.versionId]: rec };
    writeFileAtomic(this.#indexFile, JSON.stringify(this.#index, null, 2) + '\n');
    return rec;
  }

  /** The artifact file of a version, downloaded (resumably) unless a file with its sha256 is already cached. */
  async fetch(versionId: string, signal?: AbortSignal): Promise<{ record: VersionRecord; file: string }> {
    const known = this.#index[versionId];
    if (known) {
      const file = join(this.#dir, `${known.sha256}.safetensors`);
      if (existsSync(file) && (await sha256HexOfFile(file)).sha256 === known.sha256) return { record: known, file };
    }
    const tmp = join(this.#dir, `${versionId.replace(/[^A-Za-z0-9._-]/g, '_')}.download`);
    const started = Date.now();
    const out = await this.#conn.downloadVersion(versionId, tmp, { ...(signal ? { signal } : {}), taskId: this.#taskId });
    const record = this.#remember(out.version);
    const file = join(this.#dir, `${record.sha256}.safetensors`);
    renameSync(tmp, file);
    this.#log.info('downloaded model version', { versionId, bytes: out.bytes, seconds: (Date.now() - started) / 1000, resumes: out.resumedFrom.length - 1 });
    return { record, file };
  }

  /** The base version under `versionId`: itself when it is a base, else the first base among its ancestors. */
  async resolveBase(versionId: string, signal?: AbortSignal): Promise<{ base: VersionRecord; chain: VersionRecord[] }> {
    const chain: VersionRecord[] = [];
    let id = versionId;
    for (let i = 0; i < MAX_CHAIN; i++) {
      const rec = await this.describe(id, signal);
      if (rec.kind === 'base') return { base: rec, chain };
      chain.push(rec);
      if (!rec.parentVersionId) {
        throw new FedmmError('FAILED_PRECONDITION', `version ${versionId} descends from ${id}, which has no parent and is not a base version; register the adapters with the base as their parent`);
      }
      id = rec.parentVersionId;
    }
    throw new FedmmError('FAILED_PRECONDITION', `version ${versionId} has more than ${MAX_CHAIN} ancestors; the lineage is cyclic`);
  }

  /** The base model and global adapters a round starts from. */
  async loadRound(inputVersionId: string, signal?: AbortSignal): Promise<RoundModel> {
    const { base: baseRec, chain } = await this.resolveBase(inputVersionId, signal);
    const base = await this.loadBaseModel(baseRec.versionId, signal);
    const baseFile = this.#base!.file;
    const input = chain[0];
    if (!input) throw new FedmmError('FAILED_PRECONDITION', `the round's input ${inputVersionId} is a base version; a task trains from an adapter version whose parent is the base`);
    const art = readArtifact((await this.fetch(input.versionId, signal)).file);
    const rank = rankOf(art.tensors);
    const alpha = await this.#alphaOf(art, chain, rank, signal);
    return { base, baseFile, baseVersionId: baseRec.versionId, inputVersionId, adapters: { rank, alpha, tensors: art.tensors }, modalities: input.modalities };
  }

  // Aggregated versions need not repeat the LoRA alpha; it is fixed for a task, so the nearest
  // ancestor that states it (the initial adapters) decides. Without any, alpha = rank (scale 1).
  async #alphaOf(art: Artifact, chain: VersionRecord[], rank: number, signal?: AbortSignal): Promise<number> {
    const read = (m: Readonly<Record<string, string>>): number | undefined => {
      const v = Number(m[ADAPTER_METADATA_KEYS.alpha]);
      return Number.isFinite(v) && v > 0 ? v : undefined;
    };
    const own = read(art.metadata);
    if (own !== undefined) return own;
    for (const rec of chain.slice(1)) {
      const a = read(readArtifact((await this.fetch(rec.versionId, signal)).file).metadata);
      if (a !== undefined) return a;
    }
    this.#log.warn('no version in the lineage states the LoRA alpha; using alpha = rank', { rank });
    return rank;
  }

  /** The frozen base model of a base version (kept in memory; a new base releases the old one). */
  async loadBaseModel(versionId: string, signal?: AbortSignal): Promise<BaseModel> {
    if (this.#base?.versionId === versionId) return this.#base.model;
    const { file } = await this.fetch(versionId, signal);
    const art = readArtifact(file);
    if (art.metadata[BASE_METADATA_KEYS.config] === undefined) {
      throw new FedmmError('FAILED_PRECONDITION', `base version ${versionId} carries no ${BASE_METADATA_KEYS.config} metadata; register bases with saveBase's metadata`);
    }
    const model = loadBase({ tensors: art.tensors, metadata: { ...art.metadata } });
    this.#base?.model.dispose();
    this.#base = { versionId, model, file };
    return model;
  }

  /** Releases the base model's tensors. */
  dispose(): void {
    this.#base?.model.dispose();
    this.#base = undefined;
  }
}
