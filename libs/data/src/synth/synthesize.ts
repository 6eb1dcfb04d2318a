import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { failedPrecondition, invalidArgument } from '@fedmm/core';
import { encodeJpeg, encodePng, type RgbImage } from '../image.js';
import { LABELS_FILE, MANIFEST_FILE } from '../manifest.js';
import { Rng } from '../prng.js';
import { DOMAINS, INCIDENT_CLASSES, type IncidentClass } from './classes.js';
import { renderIncidentImage } from './images.js';
import { DEFAULT_COMPANIES, PUBLIC_SPEC, type CompanySpec } from './presets.js';
import { generateSensorSeries } from './sensors.js';
import { writeIncidentText } from './texts.js';

/** Bumped whenever the generative process changes, so results name the benchmark they used. */
export const BENCHMARK_VERSION = 1;
/** Ground truth of the faults injected into a company's training split. */
export const FAULTS_FILE = 'faults.json';

export interface SynthProgress {
  readonly stage: string;
  readonly done: number;
  readonly total: number;
}

export interface SynthOptions {
  readonly outDir: string;
  readonly seed?: string | number;
  readonly companies?: readonly CompanySpec[];
  /** The public pretraining split; null leaves it out. */
  readonly publicSpec?: CompanySpec | null;
  readonly onProgress?: (p: SynthProgress) => void;
}

/** Ground truth a data-quality inspector can be scored against. */
export interface InjectedFaults {
  readonly company: string;
  readonly split: 'train';
  readonly labelNoise: Array<{ id: string; given: string; true: string }>;
  readonly duplicates: Array<{ id: string; of: string; kind: 'exact' | 'near' }>;
  readonly flatLines: Array<{ id: string; channel: number }>;
  readonly sensorOutliers: Array<{ id: string; channel: number; gain: number }>;
  readonly corruptImages: Array<{ id: string; path: string }>;
}

export interface SynthDataset {
  readonly company: string;
  readonly split: 'train' | 'test' | 'public';
  readonly dir: string;
  readonly samples: number;
  readonly modalities: { image: number; text: number; sensor: number };
  readonly classCounts: Record<string, number>;
}

export interface SynthResult {
  readonly outDir: string;
  readonly seed: string;
  readonly classes: readonly IncidentClass[];
  readonly datasets: SynthDataset[];
  /** Company name -> path of its faults.json. */
  readonly faults: Record<string, string>;
}

interface DraftSample {
  cls: IncidentClass;
  label: IncidentClass;
  image?: RgbImage;
  imageBytes?: Buffer;
  text?: string;
  sensor?: number[][];
  /** Index of the base sample a duplicate copies. */
  dupOf?: number;
  dupKind?: 'exact' | 'near';
  fault?: 'label' | 'flat' | 'outlier' | 'corrupt' | 'dup-source';
  faultChannel?: number;
  faultGain?: number;
}

/** Exact per-class counts proportional to the weights (largest remainder), so skew is as specified. */
function classCounts(weights: Readonly<Partial<Record<IncidentClass, number>>>, total: number): Map<IncidentClass, number> {
  const w = INCIDENT_CLASSES.map((c) => Math.max(0, weights[c] ?? 0));
  const sum = w.reduce((a, b) => a + b, 0);
  if (sum <= 0) throw invalidArgument('class weights must give at least one class a positive weight');
  const exact = w.map((x) => (x / sum) * total);
  const counts = exact.map(Math.floor);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const short = total - counts.reduce((a, b) => a + b, 0);
  for (let k = 0; k < short; k++) counts[(order[k] as readonly [number, number])[1]]! += 1;
  return new Map(INCIDENT_CLASSES.map((c, i) => [c, counts[i] as number]));
}

function encodeImage(img: RgbImage, format: 'png' | 'jpeg'): Buffer {
  return format === 'png' ? encodePng(img) : encodeJpeg(img, 85);
}

function draftSample(spec: CompanySpec, cls: IncidentClass, rng: Rng): DraftSample {
  const want = (['image', 'text', 'sensor'] as const).filter((m) => spec.modalities[m]);
  const mods = rng.fork('modalities');
  let keep = want.filter(() => !mods.bool(spec.missingRate));
  if (keep.length === 0) keep = [mods.pick(want)];
  const s: DraftSample = { cls, label: cls };
  if (keep.includes('image')) {
    s.image = renderIncidentImage(cls, rng.fork('image'), spec.camera, spec.imageWeakRate).toRgb();
    s.imageBytes = encodeImage(s.image, spec.imageFormat);
  }
  if (keep.includes('text')) s.text = writeIncidentText(cls, rng.fork('text'), spec.dialects, rng.fork('place').pick(spec.places), spec.textVagueRate);
  if (keep.includes('sensor')) s.sensor = generateSensorSeries(cls, rng.fork('sensor'), spec.sensors, spec.sensorWeakRate);
  return s;
}

/** Same incident logged again: same scene re-captured with new grain, spacing and case changed, sensor re-read. */
function nearCopy(spec: CompanySpec, src: DraftSample, rng: Rng): DraftSample {
  const out: DraftSample = { cls: src.cls, label: src.label };
  if (src.image !== undefined) {
    const shift = rng.uniform(-0.03, 0.03);
    const data = Uint8Array.from(src.image.data, (v) => Math.max(0, Math.min(255, Math.round(v + 255 * shift + rng.normal(0, 2)))));
    out.image = { width: src.image.width, height: src.image.height, data };
    out.imageBytes = encodeImage(out.image, spec.imageFormat);
  }
  if (src.text !== undefined) out.text = `${src.text.toLowerCase().replaceAll(' ', '  ')} `;
  if (src.sensor !== undefined) out.sensor = src.sensor.map((ch) => ch.map((x) => Math.round((x + rng.normal(0, 0.01)) * 1000) / 1000));
  return out;
}

function pickDistinct(rng: Rng, pool: number[], n: number, taken: Set<number>): number[] {
  const free = rng.shuffled(pool.filter((i) => !taken.has(i)));
  const out = free.slice(0, n);
  for (const i of out) taken.add(i);
  return out.sort((a, b) => a - b);
}

/** Injects the spec's faults into a drafted training split and returns the final sample order. */
function injectFaults(spec: CompanySpec, base: DraftSample[], rng: Rng): DraftSample[] {
  const f = spec.faults;
  if (f === undefined) return base;
  const taken = new Set<number>();
  const all = base.map((_, i) => i);
  const withImage = all.filter((i) => base[i]!.image !== undefined);
  const withSensor = all.filter((i) => base[i]!.sensor !== undefined);
  for (const i of pickDistinct(rng, all, Math.round((f.labelNoise ?? 0) * base.length), taken)) {
    const s = base[i]!;
    s.label = rng.pick(INCIDENT_CLASSES.filter((c) => c !== s.cls));
    s.fault = 'label';
  }
  const exact = pickDistinct(rng, withImage.length > 0 ? withImage : all, f.exactDuplicates ?? 0, taken);
  const near = pickDistinct(rng, withImage.length > 0 ? withImage : all, f.nearDuplicates ?? 0, taken);
  for (const i of [...exact, ...near]) base[i]!.fault = 'dup-source';
  for (const i of pickDistinct(rng, withSensor, f.flatLines ?? 0, taken)) {
    const s = base[i]!;
    const c = rng.int(0, s.sensor!.length - 1);
    const level = s.sensor![c]![0]!;
    s.sensor![c] = s.sensor![c]!.map(() => level);
    s.fault = 'flat';
    s.faultChannel = c;
  }
  for (const i of pickDistinct(rng, withSensor, f.sensorOutliers ?? 0, taken)) {
    const s = base[i]!;
    const c = rng.int(0, s.sensor!.length - 1);
    const gain = rng.pick([12, 15, 20]);
    s.sensor![c] = s.sensor![c]!.map((x) => Math.round(x * gain * 1000) / 1000);
    s.fault = 'outlier';
    s.faultChannel = c;
    s.faultGain = gain;
  }
  for (const i of pickDistinct(rng, withImage, f.corruptImages ?? 0, taken)) {
    const s = base[i]!;
    s.imageBytes = s.imageBytes!.subarray(0, Math.floor(s.imageBytes!.length * 0.6));
    s.fault = 'corrupt';
  }
  // Each copy lands somewhere after its source, so "keep the first" keeps the original.
  const order: DraftSample[] = base.slice();
  const copies: DraftSample[] = [
    ...exact.map((i) => ({ ...base[i]!, fault: undefined, dupOf: i, dupKind: 'exact' as const })),
    ...near.map((i) => ({ ...nearCopy(spec, base[i]!, rng.fork(`near-${i}`)), dupOf: i, dupKind: 'near' as const })),
  ] as DraftSample[];
  for (const copy of copies) {
    const src = order.indexOf(base[copy.dupOf!]!);
    order.splice(rng.int(src + 1, order.length), 0, copy);
  }
  return order;
}

function sensorCsv(series: number[][]): string {
  const header = ['temperature', 'current', 'vibration'].slice(0, series.length);
  while (header.length < series.length) header.push(`channel_${header.length}`);
  const rows = [header.join(',')];
  for (let t = 0; t < series[0]!.length; t++) rows.push(series.map((ch) => String(ch[t])).join(','));
  return rows.join('\n') + '\n';
}

async function writeSplit(
  spec: CompanySpec,
  split: SynthDataset['split'],
  dir: string,
  samples: DraftSample[],
  base: DraftSample[],
): Promise<{ dataset: SynthDataset; faults: InjectedFaults }> {
  await mkdir(dir, { recursive: true });
  const prefix = split === 'public' ? 'public' : `${spec.name}-${split}`;
  const width = Math.max(4, String(samples.length).length);
  const ids = samples.map((_, i) => `${prefix}-${String(i + 1).padStart(width, '0')}`);
  const idOf = new Map(samples.map((s, i) => [s, ids[i] as string]));
  const faults: InjectedFaults = { company: spec.name, split: 'train', labelNoise: [], duplicates: [], flatLines: [], sensorOutliers: [], corruptImages: [] };
  const lines: string[] = [];
  const counts = { image: 0, text: 0, sensor: 0 };
  const classCount: Record<string, number> = Object.fromEntries(INCIDENT_CLASSES.map((c) => [c, 0]));
  if (samples.some((s) => s.imageBytes !== undefined)) await mkdir(path.join(dir, 'images'), { recursive: true });
  if (spec.sensorStorage === 'csv' && samples.some((s) => s.sensor !== undefined)) await mkdir(path.join(dir, 'sensors'), { recursive: true });
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i]!;
    const id = ids[i]!;
    const entry: Record<string, unknown> = { id };
    if (s.imageBytes !== undefined) {
      const rel = `images/${id}.${spec.imageFormat === 'png' ? 'png' : 'jpg'}`;
      await writeFile(path.join(dir, rel), s.imageBytes);
      entry['image'] = rel;
      counts.image++;
      if (s.fault === 'corrupt') faults.corruptImages.push({ id, path: rel });
    }
    if (s.text !== undefined) {
      entry['text'] = s.text;
      counts.text++;
    }
    if (s.sensor !== undefined) {
      if (spec.sensorStorage === 'csv') {
        const rel = `sensors/${id}.csv`;
        await writeFile(path.join(dir, rel), sensorCsv(s.sensor));
        entry['sensor'] = { path: rel };
      } else {
        entry['sensor'] = s.sensor;
      }
      counts.sensor++;
    }
    entry['label'] = s.label;
    classCount[s.label] = (classCount[s.label] ?? 0) + 1;
    lines.push(JSON.stringify(entry));
    if (s.fault === 'label') faults.labelNoise.push({ id, given: s.label, true: s.cls });
    if (s.fault === 'flat') faults.flatLines.push({ id, channel: s.faultChannel! });
    if (s.fault === 'outlier') faults.sensorOutliers.push({ id, channel: s.faultChannel!, gain: s.faultGain! });
    if (s.dupOf !== undefined) faults.duplicates.push({ id, of: idOf.get(base[s.dupOf]!)!, kind: s.dupKind! });
  }
  await writeFile(path.join(dir, MANIFEST_FILE), lines.join('\n') + '\n');
  await writeFile(path.join(dir, LABELS_FILE), JSON.stringify(INCIDENT_CLASSES, null, 2) + '\n');
  return { dataset: { company: spec.name, split, dir, samples: samples.length, modalities: counts, classCounts: classCount }, faults };
}

function draftSplit(spec: CompanySpec, size: number, rng: Rng, onSample: () => void): DraftSample[] {
  const counts = classCounts(spec.classWeights, size);
  const classes: IncidentClass[] = [];
  for (const [c, n] of counts) for (let k = 0; k < n; k++) classes.push(c);
  return rng.fork('order').shuffled(classes).map((c, i) => {
    const s = draftSample(spec, c, rng.fork(`sample-${i}`));
    onSample();
    return s;
  });
}

/** Refuses to write into a folder that holds something other than an earlier benchmark. */
async function prepareOutDir(outDir: string, names: readonly string[]): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(outDir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    entries = [];
  }
  if (entries.length > 0 && !entries.includes('benchmark.json')) {
    throw failedPrecondition(`${outDir} is not empty and holds no benchmark.json; choose an empty or new folder for the synthetic benchmark`, { outDir });
  }
  // Rewriting an earlier benchmark: clear the folders we own so no stale file survives.
  for (const n of names) await rm(path.join(outDir, n), { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
}

/**
 * Generates the seeded "city safety operations" benchmark: per company a train and a test split
 * in the manifest format plus faults.json, and a public pretraining split. Same seed, same bytes.
 */
export async function synthesize(options: SynthOptions): Promise<SynthResult> {
  const seed = String(options.seed ?? 'fedmm-city-safety');
  const companies = options.companies ?? DEFAULT_COMPANIES;
  const publicSpec = options.publicSpec === undefined ? PUBLIC_SPEC : options.publicSpec;
  const names = companies.map((c) => c.name);
  for (const n of names) {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(n)) throw invalidArgument(`company name '${n}' must be lowercase letters, digits, '-' or '_'`);
    if (n === 'public') throw invalidArgument("'public' is reserved for the pretraining split; rename the company");
  }
  if (new Set(names).size !== names.length) throw invalidArgument('company names must be unique');
  const root = new Rng(seed);
  const total = companies.reduce((a, c) => a + c.trainSize + c.testSize, 0) + (publicSpec?.trainSize ?? 0);
  let done = 0;
  const tick = (stage: string) => () => options.onProgress?.({ stage, done: ++done, total });
  await prepareOutDir(options.outDir, [...names, ...(publicSpec !== null ? ['public'] : [])]);
  const datasets: SynthDataset[] = [];
  const faultFiles: Record<string, string> = {};
  for (const spec of companies) {
    const rng = root.fork(`company/${spec.name}`);
    const base = draftSplit(spec, spec.trainSize, rng.fork('train'), tick(`${spec.name}/train`));
    const train = injectFaults(spec, base, rng.fork('faults'));
    const written = await writeSplit(spec, 'train', path.join(options.outDir, spec.name, 'train'), train, base);
    datasets.push(written.dataset);
    const faultsFile = path.join(options.outDir, spec.name, FAULTS_FILE);
    await writeFile(faultsFile, JSON.stringify(written.faults, null, 2) + '\n');
    faultFiles[spec.name] = faultsFile;
    if (spec.testSize > 0) {
      const test = draftSplit(spec, spec.testSize, rng.fork('test'), tick(`${spec.name}/test`));
      datasets.push((await writeSplit(spec, 'test', path.join(options.outDir, spec.name, 'test'), test, test)).dataset);
    }
  }
  if (publicSpec !== null) {
    const pub = draftSplit(publicSpec, publicSpec.trainSize, root.fork('public'), tick('public'));
    datasets.push((await writeSplit(publicSpec, 'public', path.join(options.outDir, 'public'), pub, pub)).dataset);
  }
  const meta = {
    benchmark: 'fedmm-city-safety',
    version: BENCHMARK_VERSION,
    seed,
    classes: INCIDENT_CLASSES,
    domains: DOMAINS,
    datasets: datasets.map((d) => ({ ...d, dir: path.relative(options.outDir, d.dir) })),
    companies: companies.map((c) => ({ name: c.name, description: c.description, modalities: c.modalities, faults: c.faults ?? {} })),
  };
  await writeFile(path.join(options.outDir, 'benchmark.json'), JSON.stringify(meta, null, 2) + '\n');
  await writeFile(path.join(options.outDir, LABELS_FILE), JSON.stringify(INCIDENT_CLASSES, null, 2) + '\n');
  return { outDir: options.outDir, seed, classes: INCIDENT_CLASSES, datasets, faults: faultFiles };
}
