import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { FedmmError, invalidArgument } from '@fedmm/core';
import { toModelImage } from '../image.js';
import { decodeRecord, type Sample } from '../loader.js';
import { readManifest, resolveLabels, type ManifestIssue, type ManifestRecord } from '../manifest.js';
import { SENSOR_CHANNELS, toModelSensor } from '../sensor.js';
import { crossValidatedProbabilities } from './classifier.js';
import { findLabelIssues } from './confident-learning.js';
import { extractFeatures } from './features.js';
import { hammingDistance, jaccard, normalizeText, perceptualHash, pixelDigest, seriesDistance, trigrams, type PerceptualHash } from './hashes.js';

/** Version of the quality-report format. */
export const QUALITY_REPORT_VERSION = 1;

export interface InspectProgress {
  readonly stage: 'decode' | 'duplicates' | 'sensors' | 'label-issues';
  readonly done: number;
  readonly total: number;
}

export interface InspectOptions {
  /** The task's class list; default labels.json, else the manifest's sorted labels. */
  readonly classes?: readonly string[];
  /** Class probabilities from the current shared model, one row per sample in the order given. */
  readonly predictProba?: (samples: readonly Sample[]) => Promise<Float32Array[]>;
  /** Folds of the built-in cross-validated classifier (default 5). */
  readonly folds?: number;
  /** Cross-validation repetitions with different splits, averaged (default 3). */
  readonly repeats?: number;
  readonly seed?: string | number;
  /** Largest pHash Hamming distance for near-duplicate images (default 10 of 64 bits). */
  readonly nearImageDistance?: number;
  /** Smallest trigram Jaccard similarity for near-duplicate texts (default 0.9). */
  readonly nearTextSimilarity?: number;
  /** Largest relative L2 distance for near-duplicate sensor series (default 0.05). */
  readonly nearSensorDistance?: number;
  /** Robust z-score above which a series statistic is an outlier (default 8). */
  readonly outlierZ?: number;
  /** Channels a series should have (default 3). */
  readonly sensorChannels?: number;
  readonly manifest?: string;
  readonly onProgress?: (p: InspectProgress) => void;
}

/** Where a flagged sample is: id, manifest line, and its image path for thumbnails. */
export interface SampleRef {
  readonly id: string;
  readonly line: number;
  readonly label: string;
  readonly image?: string;
}

export interface DuplicateGroup {
  readonly kind: 'exact' | 'near';
  /** The first occurrence, kept by --fix. */
  readonly keep: SampleRef;
  /** Later copies, dropped by --fix. */
  readonly duplicates: SampleRef[];
  readonly labelsAgree: boolean;
}

export interface ModalityDuplicate {
  readonly modality: 'image' | 'text' | 'sensor';
  readonly kind: 'exact' | 'near';
  readonly ids: string[];
  /** pHash Hamming distance, text similarity or series distance, for near pairs. */
  readonly score?: number;
}

export interface QualityReport {
  readonly version: number;
  readonly dataset: string;
  readonly manifest: string;
  /** sha256 of the manifest inspected; --fix refuses a manifest that changed since. */
  readonly manifestSha256: string;
  readonly generatedAt: string;
  readonly classes: readonly string[];
  readonly classSource: 'given' | 'labels.json' | 'manifest';
  readonly summary: {
    readonly lines: number;
    readonly samples: number;
    readonly usable: number;
    readonly manifestErrors: number;
    readonly decodeErrors: number;
    readonly unknownLabels: number;
    readonly duplicateSamples: number;
    readonly sensorOutliers: number;
    readonly flatLines: number;
    readonly labelIssues: number;
  };
  readonly manifestErrors: readonly ManifestIssue[];
  readonly decodeErrors: ReadonlyArray<SampleRef & { readonly field: string; readonly message: string }>;
  readonly unknownLabels: ReadonlyArray<{ readonly label: string; readonly lines: readonly number[] }>;
  readonly classBalance: {
    readonly counts: Record<string, number>;
    /** Largest class count over smallest non-empty one. */
    readonly imbalanceRatio: number;
    readonly missingClasses: string[];
  };
  readonly modalities: {
    readonly image: { readonly present: number; readonly missing: number };
    readonly text: { readonly present: number; readonly missing: number };
    readonly sensor: { readonly present: number; readonly missing: number };
    /** Count of samples per combination, e.g. "image+sensor". */
    readonly combinations: Record<string, number>;
  };
  readonly duplicates: {
    readonly samples: DuplicateGroup[];
    readonly byModality: ModalityDuplicate[];
  };
  readonly sensors: {
    readonly outliers: ReadonlyArray<SampleRef & { readonly channel: number; readonly statistic: string; readonly value: number; readonly robustZ: number }>;
    readonly flatLines: ReadonlyArray<SampleRef & { readonly channel: number; readonly std: number }>;
    readonly channelMismatch: ReadonlyArray<SampleRef & { readonly channels: number }>;
  };
  readonly labelIssues: {
    readonly method: 'model' | 'cross-validated';
    readonly folds?: number;
    /** Share of samples whose most probable class is their given label. */
    readonly agreement: number;
    readonly thresholds: Record<string, number>;
    readonly issues: ReadonlyArray<SampleRef & { readonly suggested: string; readonly selfConfidence: number; readonly suggestedConfidence: number }>;
  };
}

interface Item {
  readonly record: ManifestRecord;
  readonly ref: SampleRef;
  readonly labelIndex: number;
  readonly sample: Sample;
  readonly pixels?: string;
  readonly phash?: PerceptualHash;
  readonly normText?: string;
  grams?: Set<string>;
  readonly rawSensor?: number[][];
  readonly sensorKey?: string;
}

function refOf(r: ManifestRecord): SampleRef {
  return r.entry.image !== undefined ? { id: r.id, line: r.line, label: r.entry.label, image: r.entry.image } : { id: r.id, line: r.line, label: r.entry.label };
}

class UnionFind {
  private readonly parent: Int32Array;
  constructor(n: number) {
    this.parent = Int32Array.from({ length: n }, (_, i) => i);
  }
  find(i: number): number {
    while (this.parent[i] !== i) {
      this.parent[i] = this.parent[this.parent[i]!]!;
      i = this.parent[i]!;
    }
    return i;
  }
  union(a: number, b: number): void {
    const ra = this.find(a), rb = this.find(b);
    // The smaller index (earlier line) stays the root, so the first occurrence is the one kept.
    if (ra !== rb) this.parent[Math.max(ra, rb)] = Math.min(ra, rb);
  }
}

const median = (xs: number[]): number => {
  const s = xs.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Finds exact and near duplicate samples (all shared modalities match) and per-modality copies. */
function findDuplicates(items: readonly Item[], o: Required<Pick<InspectOptions, 'nearImageDistance' | 'nearTextSimilarity' | 'nearSensorDistance'>>, progress: (d: number) => void): QualityReport['duplicates'] {
  const byModality: ModalityDuplicate[] = [];
  const exactGroups = (key: (it: Item) => string | undefined, modality: ModalityDuplicate['modality']): void => {
    const groups = new Map<string, string[]>();
    for (const it of items) {
      const k = key(it);
      if (k === undefined) continue;
      groups.set(k, [...(groups.get(k) ?? []), it.ref.id]);
    }
    for (const ids of groups.values()) if (ids.length > 1) byModality.push({ modality, kind: 'exact', ids });
  };
  exactGroups((it) => it.pixels, 'image');
  exactGroups((it) => it.normText, 'text');
  exactGroups((it) => it.sensorKey, 'sensor');

  const uf = new UnionFind(items.length);
  const exactPair = new Set<string>();
  for (let a = 0; a < items.length; a++) {
    const A = items[a]!;
    for (let b = a + 1; b < items.length; b++) {
      const B = items[b]!;
      if ((A.phash === undefined) !== (B.phash === undefined) || (A.normText === undefined) !== (B.normText === undefined) || (A.sensorKey === undefined) !== (B.sensorKey === undefined)) continue;
      let exact = true;
      if (A.phash !== undefined) {
        const dist = hammingDistance(A.phash, B.phash!);
        if (dist > o.nearImageDistance) continue;
        if (A.pixels !== B.pixels) {
          exact = false;
          byModality.push({ modality: 'image', kind: 'near', ids: [A.ref.id, B.ref.id], score: dist });
        }
      }
      if (A.normText !== undefined) {
        if (A.normText !== B.normText) {
          A.grams ??= trigrams(A.normText);
          B.grams ??= trigrams(B.normText!);
          const sim = jaccard(A.grams, B.grams);
          if (sim < o.nearTextSimilarity) continue;
          exact = false;
        } else if (A.sample.text !== B.sample.text) {
          exact = false;
        }
      }
      if (A.sensorKey !== undefined) {
        if (A.sensorKey !== B.sensorKey) {
          if (seriesDistance(A.sample.sensor!, B.sample.sensor!) > o.nearSensorDistance) continue;
          exact = false;
        }
      }
      uf.union(a, b);
      if (exact) exactPair.add(`${a}:${b}`);
    }
    progress(a + 1);
  }
  const groups = new Map<number, number[]>();
  items.forEach((_, i) => {
    const r = uf.find(i);
    groups.set(r, [...(groups.get(r) ?? []), i]);
  });
  const samples: DuplicateGroup[] = [];
  for (const [root, members] of groups) {
    if (members.length < 2) continue;
    const rest = members.filter((m) => m !== root);
    const exact = rest.every((m) => exactPair.has(`${root}:${m}`));
    const labels = new Set(members.map((m) => items[m]!.ref.label));
    samples.push({ kind: exact ? 'exact' : 'near', keep: items[root]!.ref, duplicates: rest.map((m) => items[m]!.ref), labelsAgree: labels.size === 1 });
  }
  samples.sort((a, b) => a.keep.line - b.keep.line);
  return { samples, byModality };
}

const SERIES_STATS = ['mean', 'log-std', 'max-deviation'] as const;

/** Dead channels (constant) and series whose level, spread or peak is far from the rest of their class. */
function checkSensors(items: readonly Item[], outlierZ: number): Pick<QualityReport['sensors'], 'outliers' | 'flatLines'> {
  const flatLines: Array<SampleRef & { channel: number; std: number }> = [];
  const stats: Array<{ item: Item; channel: number; values: number[] }> = [];
  for (const it of items) {
    const s = it.rawSensor;
    if (s === undefined) continue;
    s.forEach((ch, c) => {
      let mean = 0;
      for (const x of ch) mean += x;
      mean /= ch.length;
      let v = 0, dev = 0;
      for (const x of ch) {
        v += (x - mean) ** 2;
        dev = Math.max(dev, Math.abs(x - mean));
      }
      const std = Math.sqrt(v / ch.length);
      if (std <= 1e-9 * Math.max(1, Math.abs(mean))) flatLines.push({ ...it.ref, channel: c, std });
      else stats.push({ item: it, channel: c, values: [mean, Math.log(std), dev] });
    });
  }
  // Compared within the labelled class when it has enough samples: a fault signature is not an outlier.
  const outliers: QualityReport['sensors']['outliers'][number][] = [];
  const groups = new Map<string, typeof stats>();
  for (const s of stats) {
    const key = `${s.item.labelIndex}:${s.channel}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  const byChannel = new Map<number, typeof stats>();
  for (const s of stats) byChannel.set(s.channel, [...(byChannel.get(s.channel) ?? []), s]);
  for (const s of stats) {
    const own = groups.get(`${s.item.labelIndex}:${s.channel}`)!;
    const pool = own.length >= 8 ? own : byChannel.get(s.channel)!;
    if (pool.length < 5) continue;
    let worst: { statistic: string; value: number; robustZ: number } | undefined;
    SERIES_STATS.forEach((name, k) => {
      const xs = pool.map((p) => p.values[k]!);
      const med = median(xs);
      const mad = median(xs.map((x) => Math.abs(x - med)));
      if (mad <= 1e-12) return;
      const z = (0.6745 * (s.values[k]! - med)) / mad;
      if (Math.abs(z) > outlierZ && (worst === undefined || Math.abs(z) > Math.abs(worst.robustZ))) {
        worst = { statistic: name, value: name === 'log-std' ? Math.exp(s.values[k]!) : s.values[k]!, robustZ: z };
      }
    });
    if (worst !== undefined) outliers.push({ ...s.item.ref, channel: s.channel, statistic: worst.statistic === 'log-std' ? 'std' : worst.statistic, value: worst.value, robustZ: worst.robustZ });
  }
  return { outliers, flatLines };
}

/**
 * Inspects a dataset folder: decode errors, duplicates, class balance, missing modalities, sensor
 * outliers and flat lines, and suspected label errors (shared model or cross-validated confident learning).
 */
export async function inspectDataset(dir: string, options: InspectOptions = {}): Promise<QualityReport> {
  const folds = options.folds ?? 5;
  const repeats = options.repeats ?? 3;
  if (!Number.isInteger(folds) || folds < 2) throw invalidArgument(`folds is ${folds}; use an integer of at least 2`);
  if (!Number.isInteger(repeats) || repeats < 1) throw invalidArgument(`repeats is ${repeats}; use an integer of at least 1`);
  const seed = options.seed ?? 'fedmm-inspect';
  const channels = options.sensorChannels ?? SENSOR_CHANNELS;
  const progress = options.onProgress ?? (() => undefined);
  const manifest = await readManifest(dir, { onInvalid: 'collect', ...(options.manifest !== undefined ? { manifest: options.manifest } : {}) });
  const manifestBytes = await readFile(manifest.file);
  const vocab = await resolveLabels(dir, manifest.records, options.classes);
  const classIndex = new Map(vocab.classes.map((c, i) => [c, i]));

  const decodeErrors: Array<SampleRef & { field: string; message: string }> = [];
  const channelMismatch: Array<SampleRef & { channels: number }> = [];
  const items: Item[] = [];
  const modalities = { image: { present: 0, missing: 0 }, text: { present: 0, missing: 0 }, sensor: { present: 0, missing: 0 } };
  const combinations: Record<string, number> = {};
  let done = 0;
  for (const record of manifest.records) {
    progress({ stage: 'decode', done: ++done, total: manifest.records.length });
    const ref = refOf(record);
    const e = record.entry;
    for (const m of ['image', 'text', 'sensor'] as const) modalities[m][e[m] !== undefined ? 'present' : 'missing']++;
    const combo = (['image', 'text', 'sensor'] as const).filter((m) => e[m] !== undefined).join('+');
    combinations[combo] = (combinations[combo] ?? 0) + 1;
    let decoded;
    try {
      decoded = await decodeRecord(dir, manifest.file, record);
    } catch (err) {
      if (!(err instanceof FedmmError)) throw err;
      const field = err.details['field'];
      decodeErrors.push({ ...ref, field: typeof field === 'string' ? field : 'sensor', message: err.message });
      continue;
    }
    const labelIndex = classIndex.get(e.label);
    if (labelIndex === undefined) continue;
    const sample: { -readonly [K in keyof Sample]: Sample[K] } = { id: record.id, label: labelIndex };
    const item: { -readonly [K in keyof Item]: Item[K] } = { record, ref, labelIndex, sample };
    if (decoded.image !== undefined) {
      sample.image = toModelImage(decoded.image);
      item.pixels = pixelDigest(decoded.image);
      item.phash = perceptualHash(decoded.image);
    }
    if (decoded.text !== undefined) {
      sample.text = decoded.text;
      item.normText = normalizeText(decoded.text);
    }
    if (decoded.sensor !== undefined) {
      if (decoded.sensor.length !== channels) channelMismatch.push({ ...ref, channels: decoded.sensor.length });
      sample.sensor = toModelSensor(decoded.sensor, `${manifest.file}:${record.line}`, { channels, channelPolicy: 'pad-truncate' });
      item.rawSensor = decoded.sensor;
      item.sensorKey = createHash('sha256').update(JSON.stringify(decoded.sensor)).digest('hex');
    }
    items.push(item);
  }

  const counts: Record<string, number> = Object.fromEntries(vocab.classes.map((c) => [c, 0]));
  for (const it of items) counts[it.ref.label] = (counts[it.ref.label] ?? 0) + 1;
  const nonEmpty = Object.values(counts).filter((n) => n > 0);
  const imbalanceRatio = nonEmpty.length > 0 ? Math.max(...nonEmpty) / Math.min(...nonEmpty) : 0;

  const duplicates = findDuplicates(
    items,
    { nearImageDistance: options.nearImageDistance ?? 10, nearTextSimilarity: options.nearTextSimilarity ?? 0.9, nearSensorDistance: options.nearSensorDistance ?? 0.05 },
    (d) => progress({ stage: 'duplicates', done: d, total: items.length }),
  );
  progress({ stage: 'sensors', done: 0, total: 1 });
  const sensorChecks = checkSensors(items, options.outlierZ ?? 8);
  progress({ stage: 'sensors', done: 1, total: 1 });

  const samples = items.map((it) => it.sample);
  const labels = Int32Array.from(items.map((it) => it.labelIndex));
  const K = vocab.classes.length;
  let probs: Float32Array[] = [];
  if (options.predictProba !== undefined && samples.length > 0) {
    probs = await options.predictProba(samples);
    if (probs.length !== samples.length || probs.some((p) => p.length !== K)) {
      throw invalidArgument(`predictProba returned ${probs.length} rows for ${samples.length} samples (each needs ${K} class probabilities); check the model's class list`);
    }
    progress({ stage: 'label-issues', done: 1, total: 1 });
  } else if (samples.length >= folds) {
    const x = extractFeatures(samples);
    probs = samples.map(() => new Float32Array(K));
    for (let r = 0; r < repeats; r++) {
      const p = crossValidatedProbabilities(x, labels, K, folds, `${String(seed)}/${r}`, {}, (f) => progress({ stage: 'label-issues', done: r * folds + f, total: repeats * folds }));
      p.forEach((row, i) => row.forEach((v, k) => (probs[i]![k]! += v / repeats)));
    }
  }
  const cl = probs.length > 0 ? findLabelIssues(probs, labels, K) : undefined;
  let agree = 0;
  probs.forEach((p, i) => {
    let best = 0;
    for (let k = 1; k < K; k++) if (p[k]! > p[best]!) best = k;
    if (best === labels[i]) agree++;
  });
  const labelIssues: QualityReport['labelIssues'] = {
    method: options.predictProba !== undefined ? 'model' : 'cross-validated',
    ...(options.predictProba === undefined ? { folds } : {}),
    agreement: probs.length > 0 ? agree / probs.length : 0,
    thresholds: Object.fromEntries(vocab.classes.map((c, i) => [c, cl?.thresholds[i] ?? 0])),
    issues: (cl?.issues ?? []).map((is) => ({
      ...items[is.index]!.ref,
      suggested: vocab.classes[is.suggested]!,
      selfConfidence: is.selfConfidence,
      suggestedConfidence: is.suggestedConfidence,
    })),
  };

  const unknownCount = vocab.unknown.reduce((a, u) => a + u.lines.length, 0);
  return {
    version: QUALITY_REPORT_VERSION,
    dataset: dir,
    manifest: manifest.file,
    manifestSha256: createHash('sha256').update(manifestBytes).digest('hex'),
    generatedAt: new Date().toISOString(),
    classes: vocab.classes,
    classSource: vocab.source,
    summary: {
      lines: manifest.records.length + manifest.issues.length,
      samples: manifest.records.length,
      usable: items.length,
      manifestErrors: manifest.issues.length,
      decodeErrors: decodeErrors.length,
      unknownLabels: unknownCount,
      duplicateSamples: duplicates.samples.reduce((a, g) => a + g.duplicates.length, 0),
      sensorOutliers: sensorChecks.outliers.length,
      flatLines: sensorChecks.flatLines.length,
      labelIssues: labelIssues.issues.length,
    },
    manifestErrors: manifest.issues,
    decodeErrors,
    unknownLabels: vocab.unknown,
    classBalance: { counts, imbalanceRatio, missingClasses: vocab.classes.filter((c) => counts[c] === 0) },
    modalities: { ...modalities, combinations },
    duplicates,
    sensors: { ...sensorChecks, channelMismatch },
    labelIssues,
  };
}
