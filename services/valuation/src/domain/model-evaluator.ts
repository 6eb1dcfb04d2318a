import { failedPrecondition, type Logger } from '@fedmm/core';
import { loadSamples } from '@fedmm/data';
import { evaluate, initBackend, type AdapterSet, type BaseModel, type Sample as ModelSample, type TensorMap } from '@fedmm/model';
import { toModelSamples } from '@fedmm/agent';
import type { EvaluatorSource } from './ports.js';
import type { Evaluator } from './types.js';

/** A model version's artifact: tensors, metadata and lineage. */
export interface VersionArtifact {
  readonly kind: 'base' | 'adapter';
  readonly parentVersionId: string;
  readonly tensors: TensorMap;
  readonly metadata: Readonly<Record<string, string>>;
}

export interface ModelEvaluatorSourceOptions {
  /** The validation set directory of a task, or undefined when it has none. */
  readonly validationDir: (taskId: string) => string | undefined;
  /** A version's artifact from the registry. */
  readonly artifact: (versionId: string) => Promise<VersionArtifact>;
  /** Builds a base model from its artifact (the model library's loadBase). */
  readonly loadBase: (artifact: VersionArtifact) => BaseModel;
  readonly log: Logger;
}

const MAX_CHAIN = 10_000;

/**
 * The default metric: accuracy of the base model with the candidate adapters on the task's
 * validation set (`<FEDMM_VALUATION_DATA_DIR>/<task>`, a dataset directory with manifest.jsonl).
 * The base is found by following the round's input version to its base version; LoRA rank and
 * alpha come from the input version's metadata (`fedmm.lora.rank`, `fedmm.lora.alpha`).
 */
export function modelEvaluators(options: ModelEvaluatorSourceOptions): EvaluatorSource {
  const loaded = new Map<string, Promise<{ base: BaseModel; samples: ModelSample[] }>>();
  let backend: Promise<unknown> | undefined;
  return async (task, round) => {
    const dir = options.validationDir(task.taskId);
    if (!dir || !round.inputVersionId) return undefined;
    backend ??= initBackend('auto');
    await backend;
    const input = await options.artifact(round.inputVersionId);
    const baseId = await baseOf(options, round.inputVersionId, input);
    let entry = loaded.get(`${task.taskId}/${baseId}`);
    if (!entry) {
      entry = (async () => {
        const base = options.loadBase(await options.artifact(baseId));
        const data = await loadSamples(dir);
        if (data.samples.length === 0) throw failedPrecondition(`the validation set ${dir} of task ${task.taskId} is empty; add samples or remove the directory`);
        options.log.info('validation set loaded', { task: task.taskId, samples: data.samples.length, dir });
        return { base, samples: toModelSamples(data.samples, base.tokenizer) };
      })();
      entry.catch(() => loaded.delete(`${task.taskId}/${baseId}`));
      loaded.set(`${task.taskId}/${baseId}`, entry);
    }
    const { base, samples } = await entry;
    const rank = Number(input.metadata['fedmm.lora.rank'] ?? rankOf(input.tensors));
    const alpha = Number(input.metadata['fedmm.lora.alpha'] ?? rank);
    const shapes = new Map(round.layout.tensors.map((t) => [t.name, [...t.shape]]));
    const evaluator: Evaluator = (params) => {
      const tensors: TensorMap = new Map();
      for (const [name, data] of params) tensors.set(name, { shape: shapes.get(name) ?? [data.length], data });
      const adapters: AdapterSet = { rank, alpha, tensors };
      return Promise.resolve(evaluate(base, adapters, samples).accuracy);
    };
    return { evaluator, metric: 'accuracy' };
  };
}

async function baseOf(options: ModelEvaluatorSourceOptions, versionId: string, first: VersionArtifact): Promise<string> {
  let id = versionId;
  let v = first;
  for (let i = 0; i < MAX_CHAIN; i++) {
    if (v.kind === 'base') return id;
    if (!v.parentVersionId) break;
    id = v.parentVersionId;
    v = await options.artifact(id);
  }
  throw failedPrecondition(`version ${versionId} does not lead to a base version; valuation by model metric needs the adapters' base`);
}

function rankOf(tensors: TensorMap): number {
  for (const [name, t] of tensors) if (name.endsWith('.lora_A')) return t.shape[0] ?? 0;
  throw failedPrecondition('the input version holds no lora_A tensor and no fedmm.lora.rank metadata; it is not a LoRA adapter version');
}
