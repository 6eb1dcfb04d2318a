import { IMAGE_CHANNELS, IMAGE_SIZE, SENSOR_CHANNELS, SENSOR_STEPS } from '../config.js';
import { mulberry32 } from '../rng.js';
import type { Tokenizer } from '../tokenizer.js';
import type { Modality, Sample } from '../types.js';

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel'];
const FILLER = ['the', 'a', 'unit', 'report', 'shows', 'value', 'normal', 'reading'];

/**
 * A small separable task for tests and benchmarks: the class shows in every modality (a colour
 * and a bright quadrant in the image, class words in the text, a class frequency in the sensor).
 */
export function toySamples(options: {
  n: number;
  numClasses: number;
  seed: number;
  tokenizer: Tokenizer;
  modalities?: readonly Modality[];
  /** Probability that a sample drops each modality (at least one is kept). */
  dropRate?: number;
  maxTokens?: number;
  noise?: number;
}): Sample[] {
  const rng = mulberry32(options.seed);
  const mods = options.modalities ?? ['image', 'text', 'sensor'];
  const noise = options.noise ?? 0.3;
  const out: Sample[] = [];
  for (let i = 0; i < options.n; i++) {
    const label = i % options.numClasses;
    let keep = mods.filter(() => rng.next() >= (options.dropRate ?? 0));
    if (keep.length === 0) keep = [mods[rng.int(mods.length)]!];
    const sample: { image?: Float32Array; tokens?: Int32Array; sensor?: Float32Array; label: number } = { label };
    if (keep.includes('image')) {
      const img = new Float32Array(IMAGE_SIZE * IMAGE_SIZE * IMAGE_CHANNELS);
      const qy = label % 2;
      const qx = Math.floor(label / 2) % 2;
      for (let y = 0; y < IMAGE_SIZE; y++)
        for (let x = 0; x < IMAGE_SIZE; x++)
          for (let c = 0; c < IMAGE_CHANNELS; c++) {
            const bright = Math.floor(y / 16) === qy && Math.floor(x / 16) === qx ? 0.6 : 0;
            const tint = c === label % IMAGE_CHANNELS ? 0.3 : 0;
            img[(y * IMAGE_SIZE + x) * IMAGE_CHANNELS + c] = 0.2 + bright + tint + noise * rng.normal() * 0.5;
          }
      sample.image = img;
    }
    if (keep.includes('text')) {
      const words = [FILLER[rng.int(FILLER.length)]!, WORDS[label % WORDS.length]!, FILLER[rng.int(FILLER.length)]!];
      if (rng.next() < 0.5) words.push(WORDS[label % WORDS.length]!);
      sample.tokens = options.tokenizer.encode(words.join(' '), options.maxTokens ?? 16);
    }
    if (keep.includes('sensor')) {
      const s = new Float32Array(SENSOR_CHANNELS * SENSOR_STEPS);
      const freq = (label + 1) / 16;
      const phase = rng.next() * Math.PI * 2;
      for (let c = 0; c < SENSOR_CHANNELS; c++)
        for (let t = 0; t < SENSOR_STEPS; t++) s[c * SENSOR_STEPS + t] = Math.sin(2 * Math.PI * freq * t + phase + c) + noise * rng.normal();
      sample.sensor = s;
    }
    out.push(sample);
  }
  return out;
}
