import { initBackend } from '../backend.js';
import { createBaseModel, type BaseModel } from '../base.js';
import type { Modality, Sample } from '../types.js';
import { toySamples } from './toy-data.js';

/** Small dimensions so each test file runs in seconds. */
export const SMALL = Object.freeze({ numClasses: 3, dModel: 16, vocabSize: 64, patchSize: 8, sensorWindow: 8, mlpRatio: 2 });

export async function setup(): Promise<void> {
  await initBackend('wasm');
}

export function smallBase(seed = 1): BaseModel {
  return createBaseModel(SMALL, seed);
}

export function smallSamples(
  base: BaseModel,
  n: number,
  seed: number,
  modalities?: readonly Modality[],
  dropRate = 0,
): Sample[] {
  return toySamples({
    n,
    numClasses: SMALL.numClasses,
    seed,
    tokenizer: base.tokenizer,
    ...(modalities ? { modalities } : {}),
    dropRate,
    maxTokens: 8,
  });
}
