import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FedmmError, dataLoss, invalidArgument } from '@fedmm/core';
import { decodeImage, toModelImage, type RgbImage } from './image.js';
import { readManifest, resolveLabels, type ManifestIssue, type ManifestRecord } from './manifest.js';
import { readSensor, toModelSensor, type SensorChannelPolicy, type SensorLengthPolicy } from './sensor.js';

/** One sample as the model consumes it. */
export interface Sample {
  readonly id: string;
  /** 32x32x3, HWC, values in [0,1]. */
  readonly image?: Float32Array;
  readonly text?: string;
  /** 3 channels x 64 steps, channel-major. */
  readonly sensor?: Float32Array;
  /** Index into the class list. */
  readonly label: number;
}

/** Which modalities a dataset has at all (some samples may still lack them). */
export interface ModalityPresence {
  readonly image: boolean;
  readonly text: boolean;
  readonly sensor: boolean;
}

export interface LoadedDataset {
  readonly dir: string;
  readonly classes: readonly string[];
  readonly samples: Sample[];
  readonly modalities: ModalityPresence;
  /** Lines left out under onInvalid: 'skip', with why. */
  readonly skipped: readonly ManifestIssue[];
}

export interface LoadOptions {
  /** The task's class list; default labels.json, else the manifest's sorted labels. */
  readonly classes?: readonly string[];
  /** 'throw' (default) fails on the first bad line or file; 'skip' leaves it out and reports it. */
  readonly onInvalid?: 'throw' | 'skip';
  readonly sensorLength?: SensorLengthPolicy;
  readonly sensorChannels?: SensorChannelPolicy;
  readonly manifest?: string;
}

/** A sample's decoded content at full resolution, before shaping for the model. */
export interface DecodedSample {
  readonly image?: RgbImage;
  readonly text?: string;
  readonly sensor?: number[][];
}

/** Reads and decodes one manifest record's files; errors name the manifest line and the file. */
export async function decodeRecord(dir: string, manifestFile: string, record: ManifestRecord): Promise<DecodedSample> {
  const where = `${manifestFile}:${record.line}`;
  const out: { image?: RgbImage; text?: string; sensor?: number[][] } = {};
  if (record.entry.image !== undefined) {
    const file = path.join(dir, record.entry.image);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (e) {
      throw dataLoss(`${where}: image '${record.entry.image}' cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix the path or drop the sample`, { file, field: 'image' });
    }
    try {
      out.image = decodeImage(bytes, file);
    } catch (e) {
      throw dataLoss(`${where}: ${(e as Error).message}`, { file, field: 'image' });
    }
  }
  if (record.entry.text !== undefined) out.text = record.entry.text;
  const sensor = await readSensor(dir, record.entry, where);
  if (sensor !== undefined) out.sensor = sensor;
  return out;
}

/** Loads a dataset folder into model-ready samples: images 32x32x3 in [0,1], sensors 3x64, label indices. */
export async function loadSamples(dir: string, options: LoadOptions = {}): Promise<LoadedDataset> {
  const skip = options.onInvalid === 'skip';
  const manifest = await readManifest(dir, { onInvalid: skip ? 'collect' : 'throw', ...(options.manifest !== undefined ? { manifest: options.manifest } : {}) });
  const vocab = await resolveLabels(dir, manifest.records, options.classes);
  const index = new Map(vocab.classes.map((c, i) => [c, i]));
  const skipped: ManifestIssue[] = [...manifest.issues];
  const samples: Sample[] = [];
  const presence = { image: false, text: false, sensor: false };
  for (const record of manifest.records) {
    const where = `${manifest.file}:${record.line}`;
    try {
      const label = index.get(record.entry.label);
      if (label === undefined) {
        throw invalidArgument(
          `${where}: field 'label' is '${record.entry.label}', which is not one of the task's classes (${vocab.classes.join(', ')}); fix the label or the class list`,
          { where, field: 'label' },
        );
      }
      const decoded = await decodeRecord(dir, manifest.file, record);
      const sample: { -readonly [K in keyof Sample]: Sample[K] } = { id: record.id, label };
      if (decoded.image !== undefined) {
        sample.image = toModelImage(decoded.image);
        presence.image = true;
      }
      if (decoded.text !== undefined) {
        sample.text = decoded.text;
        presence.text = true;
      }
      if (decoded.sensor !== undefined) {
        sample.sensor = toModelSensor(decoded.sensor, where, {
          ...(options.sensorLength !== undefined ? { length: options.sensorLength } : {}),
          ...(options.sensorChannels !== undefined ? { channelPolicy: options.sensorChannels } : {}),
        });
        presence.sensor = true;
      }
      samples.push(sample);
    } catch (e) {
      if (!skip || !(e instanceof FedmmError)) throw e;
      const field = e.details['field'];
      skipped.push(typeof field === 'string' ? { line: record.line, field, message: e.message } : { line: record.line, message: e.message });
    }
  }
  skipped.sort((a, b) => a.line - b.line);
  return { dir, classes: vocab.classes, samples, modalities: presence, skipped };
}
