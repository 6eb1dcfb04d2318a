import { invalidArgument } from '@fedmm/core';
import {
  IMAGE_CHANNELS,
  IMAGE_SIZE,
  SENSOR_CHANNELS,
  SENSOR_STEPS,
  imageGeometry,
  sensorGeometry,
  sequentialInputDim,
  type ModelConfig,
} from './config.js';
import type { Modality, Sample } from './types.js';

/** A sample turned into the model's input layout once, so epochs only copy rows. */
export interface PreparedSample {
  readonly label: number;
  /** Patches in row-major patch order, each patch as (y, x, channel). */
  readonly image?: Float32Array;
  /** Distinct token ids and their share of the non-padding tokens (a normalised bag of words). */
  readonly text?: { readonly ids: Int32Array; readonly weights: Float32Array };
  /** Windows in time order, each window as (step, channel). */
  readonly sensor?: Float32Array;
}

/** The rows of a batch that hold one modality, and those rows' inputs. */
export interface ModalityRows {
  /** Batch row of each input row. */
  readonly rows: Int32Array;
  readonly data: Float32Array;
}

/** A batch in the model's input layout; a modality is absent when no sample of the batch has it. */
export interface Batch {
  readonly size: number;
  readonly labels: Int32Array;
  readonly image?: ModalityRows;
  /** Bag-of-words rows of width vocabSize. */
  readonly text?: ModalityRows;
  readonly sensor?: ModalityRows;
}

const IMAGE_LEN = IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS;
const SENSOR_LEN = SENSOR_CHANNELS * SENSOR_STEPS;

function patchify(image: Float32Array, patch: number): Float32Array {
  const side = IMAGE_SIZE / patch;
  const out = new Float32Array(IMAGE_LEN);
  let o = 0;
  for (let py = 0; py < side; py++)
    for (let px = 0; px < side; px++)
      for (let y = 0; y < patch; y++) {
        const rowStart = ((py * patch + y) * IMAGE_SIZE + px * patch) * IMAGE_CHANNELS;
        out.set(image.subarray(rowStart, rowStart + patch * IMAGE_CHANNELS), o);
        o += patch * IMAGE_CHANNELS;
      }
  return out;
}

function windows(sensor: Float32Array): Float32Array {
  const out = new Float32Array(SENSOR_LEN);
  for (let t = 0; t < SENSOR_STEPS; t++)
    for (let c = 0; c < SENSOR_CHANNELS; c++) out[t * SENSOR_CHANNELS + c] = sensor[c * SENSOR_STEPS + t]!;
  return out;
}

function bagOfWords(tokens: Int32Array, vocabSize: number, where: string): PreparedSample['text'] {
  const counts = new Map<number, number>();
  let n = 0;
  for (const id of tokens) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw invalidArgument(`${where}: token id ${id} is outside [0, ${vocabSize}); encode text with the base model's tokenizer`);
    }
    if (id === 0) continue;
    counts.set(id, (counts.get(id) ?? 0) + 1);
    n++;
  }
  if (n === 0) return undefined;
  const ids = Int32Array.from([...counts.keys()].sort((a, b) => a - b));
  const weights = Float32Array.from(ids, (id) => counts.get(id)! / n);
  return { ids, weights };
}

/** Validates samples and converts them to the model's input layout. */
export function prepareSamples(config: ModelConfig, samples: readonly Sample[]): PreparedSample[] {
  return samples.map((s, i) => prepareSample(config, s, `sample ${i}`));
}

function prepareSample(config: ModelConfig, s: Sample, where: string): PreparedSample {
  if (!Number.isInteger(s.label) || s.label < 0 || s.label >= config.numClasses) {
    throw invalidArgument(`${where}: label ${s.label} is outside [0, ${config.numClasses})`);
  }
  if (s.image && s.image.length !== IMAGE_LEN) {
    throw invalidArgument(`${where}: image has ${s.image.length} values, expected ${IMAGE_SIZE}x${IMAGE_SIZE}x${IMAGE_CHANNELS} = ${IMAGE_LEN}; resize it first`);
  }
  if (s.sensor && s.sensor.length !== SENSOR_LEN) {
    throw invalidArgument(`${where}: sensor has ${s.sensor.length} values, expected ${SENSOR_CHANNELS}x${SENSOR_STEPS} = ${SENSOR_LEN}; resample it first`);
  }
  const vocab = config.vocabSize;
  const text = s.tokens ? bagOfWords(s.tokens, vocab, where) : undefined;
  if (config.kind === 'sequential') {
    const m = config.modality;
    const present = m === 'image' ? s.image !== undefined : m === 'sensor' ? s.sensor !== undefined : text !== undefined;
    if (!present) throw invalidArgument(`${where}: this imported model reads ${m} input, which the sample lacks`);
    if (m === 'image') return { label: s.label, image: s.image! };
    if (m === 'sensor') return { label: s.label, sensor: s.sensor! };
    return { label: s.label, text: text! };
  }
  if (!s.image && !s.sensor && !text) {
    throw invalidArgument(`${where}: has no image, no non-padding tokens and no sensor series; drop it or add a modality`);
  }
  return {
    label: s.label,
    ...(s.image ? { image: patchify(s.image, config.patchSize) } : {}),
    ...(text ? { text } : {}),
    ...(s.sensor ? { sensor: windows(s.sensor) } : {}),
  };
}

/** Modalities present in at least one prepared sample. */
export function presentModalities(prepared: readonly PreparedSample[]): Set<Modality> {
  const out = new Set<Modality>();
  for (const p of prepared) {
    if (p.image) out.add('image');
    if (p.text) out.add('text');
    if (p.sensor) out.add('sensor');
  }
  return out;
}

function rowsOf(
  prepared: readonly PreparedSample[],
  indices: ArrayLike<number>,
  width: number,
  pick: (p: PreparedSample) => Float32Array | undefined,
): ModalityRows | undefined {
  const rows: number[] = [];
  for (let r = 0; r < indices.length; r++) if (pick(prepared[indices[r]!]!)) rows.push(r);
  if (rows.length === 0) return undefined;
  const data = new Float32Array(rows.length * width);
  rows.forEach((r, k) => data.set(pick(prepared[indices[r]!]!)!, k * width));
  return { rows: Int32Array.from(rows), data };
}

/** Copies the given samples into one batch. */
export function assembleBatch(config: ModelConfig, prepared: readonly PreparedSample[], indices: ArrayLike<number>): Batch {
  const labels = Int32Array.from({ length: indices.length }, (_, r) => prepared[indices[r]!]!.label);
  const textRows: number[] = [];
  for (let r = 0; r < indices.length; r++) if (prepared[indices[r]!]!.text) textRows.push(r);
  let text: ModalityRows | undefined;
  if (textRows.length > 0) {
    const data = new Float32Array(textRows.length * config.vocabSize);
    textRows.forEach((r, k) => {
      const t = prepared[indices[r]!]!.text!;
      for (let j = 0; j < t.ids.length; j++) data[k * config.vocabSize + t.ids[j]!] = t.weights[j]!;
    });
    text = { rows: Int32Array.from(textRows), data };
  }
  const image = rowsOf(prepared, indices, IMAGE_LEN, (p) => p.image);
  const sensor = rowsOf(prepared, indices, SENSOR_LEN, (p) => p.sensor);
  return {
    size: indices.length,
    labels,
    ...(image ? { image } : {}),
    ...(text ? { text } : {}),
    ...(sensor ? { sensor } : {}),
  };
}

/** Input widths per modality, for reshaping batch rows. */
export function inputWidths(config: ModelConfig): Record<Modality, number> {
  if (config.kind === 'sequential') {
    return {
      image: sequentialInputDim('image', config.vocabSize),
      text: config.vocabSize,
      sensor: sequentialInputDim('sensor', config.vocabSize),
    };
  }
  const img = imageGeometry(config);
  const sen = sensorGeometry(config);
  return { image: img.tokens * img.width, text: config.vocabSize, sensor: sen.tokens * sen.width };
}
