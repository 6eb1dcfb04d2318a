export * from './types.js';
export {
  IMAGE_SIZE,
  IMAGE_CHANNELS,
  SENSOR_CHANNELS,
  SENSOR_STEPS,
  compileModelConfig,
  denseModules,
  baseWeightSpecs,
  imageGeometry,
  sensorGeometry,
  type Activation,
  type BaseWeightSpec,
  type DenseModule,
  type ModelConfig,
  type MultimodalConfig,
  type MultimodalConfigInput,
  type SequentialConfig,
  type SequentialLayer,
} from './config.js';
export { initBackend, type BackendChoice, type BackendInfo } from './backend.js';
export { mulberry32, deriveSeed, permutation, type Rng } from './rng.js';
export { Tokenizer, words, type TokenizerJson, type TokenizerOptions } from './tokenizer.js';
export {
  BaseModel,
  BASE_METADATA_KEYS,
  createBaseModel,
  fromTensorMap,
  initialWeights,
  loadBase,
  saveBase,
  type StoredBase,
} from './base.js';
export {
  adapterDelta,
  adapterGroups,
  adapterLayout,
  adapterNamesFor,
  adapterNorm,
  adapterScale,
  applyAdapterDelta,
  cloneAdapters,
  initAdapters,
  mergeAdapters,
  selectAdapters,
  validateAdapters,
  type AdapterSet,
  type AdapterTensorInfo,
  type InitAdaptersOptions,
} from './adapters.js';
export { prepareSamples, presentModalities } from './batch.js';
export type { PrivatizeGradients, TrainProgress, TrainStats, LoopOptions } from './loop.js';
export {
  pretrain,
  train,
  trainPersonal,
  type PersonalTrainOptions,
  type PretrainOptions,
  type TrainOptions,
  type TrainResult,
} from './train.js';
export {
  evaluate,
  evaluatePersonalized,
  predictProba,
  type AdapterStack,
  type ClassAccuracy,
  type EvalResult,
  type Probabilities,
} from './evaluate.js';
export { importLayersModel, type ImportOptions } from './import-layers.js';
export { renderProgress } from './progress.js';
