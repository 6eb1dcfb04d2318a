import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FedmmError } from '@fedmm/core';
import { type Tensor, allocate, dequantizeInt8, makeTensor } from './dtype.js';
import { type NamedTensors, namedEntries, serializeSafetensors } from './safetensors.js';
import { compareUtf8 } from './order.js';
import { type Sha256Hex, sha256Hex } from './sha256.js';

/** File names of a PEFT adapter directory. */
export const PEFT_MODEL_FILE = 'adapter_model.safetensors';
export const PEFT_CONFIG_FILE = 'adapter_config.json';

/**
 * How fedmm's adapter matrices are laid out:
 * - `peft` (what @fedmm/model keeps): lora_A [r, in], lora_B [out, r], as torch and PEFT store them;
 * - `kernel` (tfjs Dense-kernel orientation, y = x A B): lora_A [in, r], lora_B [r, out]; these are
 *   transposed on export.
 */
export type AdapterOrientation = 'peft' | 'kernel';

/** One adapted module: its dotted name and its two LoRA matrices. */
export interface LoraModule {
  readonly module: string;
  readonly loraA: Tensor;
  readonly loraB: Tensor;
}

/** What to export. */
export interface PeftExportOptions {
  /** Adapter tensors named `<module>.lora_A` and `<module>.lora_B` (`lora_a`/`lora_b` also accepted). */
  readonly tensors: NamedTensors;
  readonly r: number;
  readonly loraAlpha: number;
  /** Hugging Face id or path of the base model the adapter belongs to. */
  readonly baseModel: string;
  /** Revision of the base model (a commit or tag), if pinned. */
  readonly revision?: string | null;
  /** Modules PEFT attaches to; default: every adapted module's full name. */
  readonly targetModules?: readonly string[];
  /** PEFT task type (e.g. "FEATURE_EXTRACTION", "CAUSAL_LM"); default null. */
  readonly taskType?: string | null;
  readonly loraDropout?: number;
  /** Default `peft` (see {@link AdapterOrientation}). */
  readonly orientation?: AdapterOrientation;
  /** Extra `__metadata__` entries of the safetensors file (`format: pt` is always set). */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** The PEFT tensor name of a module's LoRA matrix: `base_model.model.<module>.lora_A.weight`. */
export function peftTensorName(module: string, part: 'lora_A' | 'lora_B'): string {
  return `base_model.model.${module}.${part}.weight`;
}

const FEDMM_NAME = /^(.+)\.lora_([ABab])$/;

/** Groups `<module>.lora_A` / `<module>.lora_B` tensors into modules; every module needs both. */
export function loraModules(tensors: NamedTensors): LoraModule[] {
  const parts = new Map<string, { a?: Tensor; b?: Tensor }>();
  for (const [name, t] of namedEntries(tensors)) {
    const m = FEDMM_NAME.exec(name);
    if (m === null) throw new FedmmError('INVALID_ARGUMENT', `tensor "${name}" is not a LoRA matrix; name it <module>.lora_A or <module>.lora_B`, { tensor: name });
    const module = m[1]!;
    const slot = parts.get(module) ?? {};
    const key = m[2]!.toLowerCase() as 'a' | 'b';
    if (slot[key] !== undefined) throw new FedmmError('INVALID_ARGUMENT', `module "${module}" has two lora_${key.toUpperCase()} tensors`, { module });
    slot[key] = t;
    parts.set(module, slot);
  }
  return [...parts.entries()].sort((x, y) => compareUtf8(x[0], y[0])).map(([module, { a, b }]) => {
    if (a === undefined || b === undefined) {
      throw new FedmmError('INVALID_ARGUMENT', `module "${module}" has lora_${a === undefined ? 'A' : 'B'} missing; export both matrices of every module`, { module });
    }
    return { module, loraA: a, loraB: b };
  });
}

function transpose2d(t: Tensor): Tensor {
  const [rows, cols] = t.shape as [number, number];
  const out = allocate(t.dtype, t.data.length);
  const src = t.data;
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[i * cols + j]!;
  return makeTensor(t.dtype, [cols, rows], out);
}

function exportable(t: Tensor, what: string): Tensor {
  if (t.shape.length !== 2) throw new FedmmError('INVALID_ARGUMENT', `${what} has shape [${t.shape.join(', ')}]; LoRA matrices are 2-D`);
  if (t.dtype === 'F32' || t.dtype === 'F16' || t.dtype === 'BF16') return t;
  if (t.dtype === 'I8') {
    // PEFT has no notion of a per-tensor int8 scale: export the float values.
    if (t.scale === undefined) throw new FedmmError('INVALID_ARGUMENT', `${what} is I8 without a scale`);
    return makeTensor('F32', t.shape, dequantizeInt8(t.data as Int8Array, t.scale));
  }
  throw new FedmmError('INVALID_ARGUMENT', `${what} is ${t.dtype}; export F32, F16, BF16 or scaled I8`);
}

/** The PEFT adapter in memory: tensors under PEFT names (torch orientation) and adapter_config.json's object. */
export function buildPeftAdapter(options: PeftExportOptions): { tensors: Map<string, Tensor>; config: Record<string, unknown> } {
  const { r, loraAlpha, baseModel } = options;
  if (!Number.isSafeInteger(r) || r < 1) throw new FedmmError('INVALID_ARGUMENT', `r ${r} must be a positive integer`);
  if (typeof loraAlpha !== 'number' || !Number.isFinite(loraAlpha) || loraAlpha <= 0) throw new FedmmError('INVALID_ARGUMENT', `lora_alpha ${loraAlpha} must be a positive number`);
  if (typeof baseModel !== 'string' || baseModel.length === 0) throw new FedmmError('INVALID_ARGUMENT', 'baseModel must name the base model (a Hugging Face id or path)');
  const dropout = options.loraDropout ?? 0;
  if (!(dropout >= 0 && dropout < 1)) throw new FedmmError('INVALID_ARGUMENT', `lora_dropout ${dropout} must be in [0, 1)`);
  const orientation = options.orientation ?? 'peft';
  if (orientation !== 'peft' && orientation !== 'kernel') throw new FedmmError('INVALID_ARGUMENT', `orientation ${JSON.stringify(orientation)} must be "peft" or "kernel"`);
  const modules = loraModules(options.tensors);
  if (modules.length === 0) throw new FedmmError('INVALID_ARGUMENT', 'no adapter tensors to export');

  const tensors = new Map<string, Tensor>();
  for (const m of modules) {
    let a = exportable(m.loraA, `${m.module}.lora_A`);
    let b = exportable(m.loraB, `${m.module}.lora_B`);
    if (orientation === 'kernel') {
      a = transpose2d(a);
      b = transpose2d(b);
    }
    if (a.shape[0] !== r || b.shape[1] !== r || a.shape[1]! < 1 || b.shape[0]! < 1) {
      throw new FedmmError('INVALID_ARGUMENT', `module "${m.module}": after export lora_A is [${a.shape.join(', ')}] and lora_B [${b.shape.join(', ')}], but PEFT needs lora_A [${r}, in] and lora_B [out, ${r}]; check r and the orientation ("${orientation}")`, { module: m.module });
    }
    tensors.set(peftTensorName(m.module, 'lora_A'), a);
    tensors.set(peftTensorName(m.module, 'lora_B'), b);
  }
  const targetModules = options.targetModules !== undefined ? [...options.targetModules] : modules.map((m) => m.module);
  if (targetModules.length === 0 || !targetModules.every((t) => typeof t === 'string' && t.length > 0)) {
    throw new FedmmError('INVALID_ARGUMENT', 'targetModules must be non-empty module names');
  }
  // Keys as PEFT's LoraConfig writes them (it dumps with sorted keys).
  const config: Record<string, unknown> = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: baseModel,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layers_pattern: null,
    layers_to_transform: null,
    lora_alpha: loraAlpha,
    lora_dropout: dropout,
    modules_to_save: null,
    peft_type: 'LORA',
    r,
    rank_pattern: {},
    revision: options.revision ?? null,
    target_modules: targetModules,
    task_type: options.taskType ?? null,
    use_dora: false,
    use_rslora: false,
  };
  return { tensors, config };
}

/**
 * Writes a Hugging Face PEFT adapter directory: `adapter_model.safetensors` (PEFT names, torch
 * orientation, metadata `format: pt`) and `adapter_config.json`, so
 * `PeftModel.from_pretrained(base, dir)` loads it. Files are written to a temporary name and
 * renamed, so a reader never sees half a file.
 */
export async function exportPeft(dir: string, options: PeftExportOptions): Promise<{ modelPath: string; configPath: string; sha256: Sha256Hex; tensors: string[] }> {
  const { tensors, config } = buildPeftAdapter(options);
  const bytes = serializeSafetensors(tensors, { ...options.metadata, format: 'pt' });
  await mkdir(dir, { recursive: true });
  const modelPath = join(dir, PEFT_MODEL_FILE);
  const configPath = join(dir, PEFT_CONFIG_FILE);
  await atomicWrite(modelPath, bytes);
  await atomicWrite(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return { modelPath, configPath, sha256: sha256Hex(bytes), tensors: [...tensors.keys()] };
}

async function atomicWrite(path: string, data: Uint8Array | string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  try {
    await writeFile(tmp, data, { flush: true });
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new FedmmError('UNAVAILABLE', `cannot write ${path}: ${(e as Error).message}`, { path });
  }
}
