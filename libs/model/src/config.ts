import { invalidArgument } from '@fedmm/core';
import type { Modality, ModuleGroup } from './types.js';

/** Images are square, IMAGE_SIZE pixels a side, 3 channels (HWC); the data library resizes to it. */
export const IMAGE_SIZE = 32;
export const IMAGE_CHANNELS = 3;
/** Sensor series have SENSOR_CHANNELS channels of SENSOR_STEPS steps each. */
export const SENSOR_CHANNELS = 3;
export const SENSOR_STEPS = 64;

/** Options of the reference multimodal model; omitted fields take the documented defaults. */
export interface MultimodalConfigInput {
  readonly numClasses: number;
  /** Width of every embedding (default 64). */
  readonly dModel?: number;
  /** Side of a square image patch, dividing IMAGE_SIZE (default 8: 16 patches of 192 values). */
  readonly patchSize?: number;
  /** Steps per sensor window, dividing SENSOR_STEPS (default 8: 8 windows of 24 values). */
  readonly sensorWindow?: number;
  /** Embedding rows of the text encoder, shared with the tokenizer (default 4096). */
  readonly vocabSize?: number;
  /** Hidden width of the MLPs as a multiple of dModel (default 2). */
  readonly mlpRatio?: number;
}

/** The compiled, validated and frozen configuration of the multimodal model. */
export interface MultimodalConfig {
  readonly kind: 'multimodal';
  readonly numClasses: number;
  readonly dModel: number;
  readonly patchSize: number;
  readonly sensorWindow: number;
  readonly vocabSize: number;
  readonly mlpRatio: number;
}

/** Activations a dense module may apply after its projection. */
export type Activation = 'linear' | 'relu' | 'tanh' | 'sigmoid';

/** One dense layer of an imported sequential model. */
export interface SequentialLayer {
  readonly name: string;
  readonly inDim: number;
  readonly outDim: number;
  readonly activation: Activation;
  readonly useBias: boolean;
}

/** A single-modality classifier imported from a tfjs LayersModel (a stack of Dense layers). */
export interface SequentialConfig {
  readonly kind: 'sequential';
  readonly modality: Modality;
  readonly numClasses: number;
  /** Only for text input: the number of token ids (the input is a bag of words of this width). */
  readonly vocabSize: number;
  readonly layers: readonly SequentialLayer[];
}

export type ModelConfig = MultimodalConfig | SequentialConfig;

/** A dense projection of the model; every one carries a LoRA adapter when adapters are attached. */
export interface DenseModule {
  readonly name: string;
  readonly inDim: number;
  readonly outDim: number;
  readonly group: ModuleGroup;
  readonly activation: Activation;
  readonly useBias: boolean;
}

/** A base weight: its name, shape, the group it belongs to and how a fresh model initialises it. */
export interface BaseWeightSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly group: ModuleGroup;
  readonly init: 'glorot' | 'zeros' | 'ones' | 'embedding';
}

function positiveInt(value: number, what: string): number {
  if (!Number.isInteger(value) || value <= 0) {
    throw invalidArgument(`model config: ${what} must be a positive integer, got ${value}`, { field: what });
  }
  return value;
}

/** Fills defaults and validates a multimodal model configuration; the result is frozen. */
export function compileModelConfig(input: MultimodalConfigInput): MultimodalConfig {
  const numClasses = positiveInt(input.numClasses, 'numClasses');
  if (numClasses < 2) throw invalidArgument(`model config: numClasses must be at least 2, got ${numClasses}`);
  const patchSize = positiveInt(input.patchSize ?? 8, 'patchSize');
  if (IMAGE_SIZE % patchSize !== 0) {
    throw invalidArgument(`model config: patchSize ${patchSize} must divide the image size ${IMAGE_SIZE}`);
  }
  const sensorWindow = positiveInt(input.sensorWindow ?? 8, 'sensorWindow');
  if (SENSOR_STEPS % sensorWindow !== 0) {
    throw invalidArgument(`model config: sensorWindow ${sensorWindow} must divide the sensor length ${SENSOR_STEPS}`);
  }
  const vocabSize = positiveInt(input.vocabSize ?? 4096, 'vocabSize');
  if (vocabSize < 16) throw invalidArgument(`model config: vocabSize must be at least 16, got ${vocabSize}`);
  return Object.freeze({
    kind: 'multimodal',
    numClasses,
    dModel: positiveInt(input.dModel ?? 64, 'dModel'),
    patchSize,
    sensorWindow,
    vocabSize,
    mlpRatio: positiveInt(input.mlpRatio ?? 2, 'mlpRatio'),
  });
}

/** Number of patches and values per patch of an image. */
export function imageGeometry(c: MultimodalConfig): { tokens: number; width: number } {
  const side = IMAGE_SIZE / c.patchSize;
  return { tokens: side * side, width: c.patchSize * c.patchSize * IMAGE_CHANNELS };
}

/** Number of windows and values per window of a sensor series. */
export function sensorGeometry(c: MultimodalConfig): { tokens: number; width: number } {
  return { tokens: SENSOR_STEPS / c.sensorWindow, width: c.sensorWindow * SENSOR_CHANNELS };
}

/** Width of the flat input a sequential model reads for its modality. */
export function sequentialInputDim(modality: Modality, vocabSize: number): number {
  if (modality === 'image') return IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS;
  if (modality === 'sensor') return SENSOR_CHANNELS * SENSOR_STEPS;
  return vocabSize;
}

function dense(
  name: string,
  inDim: number,
  outDim: number,
  group: ModuleGroup,
  activation: Activation = 'linear',
): DenseModule {
  return { name, inDim, outDim, group, activation, useBias: true };
}

function encoderBlock(prefix: Modality, d: number, hidden: number): DenseModule[] {
  return [
    dense(`${prefix}.attn.q`, d, d, prefix),
    dense(`${prefix}.attn.k`, d, d, prefix),
    dense(`${prefix}.attn.v`, d, d, prefix),
    dense(`${prefix}.attn.o`, d, d, prefix),
    dense(`${prefix}.mlp.fc1`, d, hidden, prefix, 'relu'),
    dense(`${prefix}.mlp.fc2`, hidden, d, prefix),
  ];
}

/** The dense modules of a model in their stable order: the LoRA targets. */
export function denseModules(config: ModelConfig): DenseModule[] {
  if (config.kind === 'sequential') {
    return config.layers.map((l) => ({
      name: l.name,
      inDim: l.inDim,
      outDim: l.outDim,
      group: 'shared' as const,
      activation: l.activation,
      useBias: l.useBias,
    }));
  }
  const d = config.dModel;
  const hidden = d * config.mlpRatio;
  const img = imageGeometry(config);
  const sen = sensorGeometry(config);
  return [
    dense('image.patch_embed', img.width, d, 'image'),
    ...encoderBlock('image', d, hidden),
    dense('image.proj', d, d, 'image', 'relu'),
    dense('text.mlp.fc1', d, hidden, 'text', 'relu'),
    dense('text.mlp.fc2', hidden, d, 'text'),
    dense('text.proj', d, d, 'text', 'relu'),
    dense('sensor.window_embed', sen.width, d, 'sensor'),
    ...encoderBlock('sensor', d, hidden),
    dense('sensor.proj', d, d, 'sensor', 'relu'),
    dense('fusion.dense', d, d, 'shared', 'relu'),
    dense('head', d, config.numClasses, 'shared'),
  ];
}

/** Every base weight of a model in its stable order (dense kernels, biases, embeddings, norm gains). */
export function baseWeightSpecs(config: ModelConfig): BaseWeightSpec[] {
  const specs: BaseWeightSpec[] = [];
  for (const m of denseModules(config)) {
    specs.push({ name: `${m.name}.weight`, shape: [m.inDim, m.outDim], group: m.group, init: 'glorot' });
    if (m.useBias) specs.push({ name: `${m.name}.bias`, shape: [m.outDim], group: m.group, init: 'zeros' });
  }
  if (config.kind === 'sequential') return specs;
  const d = config.dModel;
  const img = imageGeometry(config);
  const sen = sensorGeometry(config);
  specs.push(
    { name: 'image.pos_embed', shape: [img.tokens, d], group: 'image', init: 'embedding' },
    { name: 'image.norm1.gain', shape: [d], group: 'image', init: 'ones' },
    { name: 'image.norm2.gain', shape: [d], group: 'image', init: 'ones' },
    { name: 'text.embed', shape: [config.vocabSize, d], group: 'text', init: 'embedding' },
    { name: 'text.norm.gain', shape: [d], group: 'text', init: 'ones' },
    { name: 'sensor.pos_embed', shape: [sen.tokens, d], group: 'sensor', init: 'embedding' },
    { name: 'sensor.norm1.gain', shape: [d], group: 'sensor', init: 'ones' },
    { name: 'sensor.norm2.gain', shape: [d], group: 'sensor', init: 'ones' },
    { name: 'fusion.norm.gain', shape: [d], group: 'shared', init: 'ones' },
  );
  return specs;
}
