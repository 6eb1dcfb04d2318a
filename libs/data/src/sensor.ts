import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { dataLoss, invalidArgument } from '@fedmm/core';
import { checkSensorMatrix, type ManifestEntry } from './manifest.js';

/** Channels the model's sensor encoder expects. */
export const SENSOR_CHANNELS = 3;
/** Steps the model's sensor encoder expects. */
export const SENSOR_STEPS = 64;

/** How a series of another length is brought to the model's length. */
export type SensorLengthPolicy = 'resample' | 'pad-crop';
/** What to do when a series has another number of channels. */
export type SensorChannelPolicy = 'strict' | 'pad-truncate';

/** Parses a CSV series: one row per step, one column per channel, an optional header row. */
export function parseSensorCsv(text: string, source: string): number[][] {
  const rows = text.split(/\r?\n/).filter((r) => r.trim() !== '');
  if (rows.length === 0) throw dataLoss(`${source}: empty CSV; expected one row per step and one column per channel`, { source });
  let first = 0;
  const head = (rows[0] as string).split(',');
  if (head.some((cell) => cell.trim() !== '' && !Number.isFinite(Number(cell)))) first = 1;
  const width = head.length;
  const channels: number[][] = Array.from({ length: width }, () => []);
  for (let r = first; r < rows.length; r++) {
    const cells = (rows[r] as string).split(',');
    if (cells.length !== width) {
      throw dataLoss(`${source}:${r + 1}: has ${cells.length} columns but the first row has ${width}; every row needs one value per channel`, { source });
    }
    for (let c = 0; c < width; c++) {
      const cell = (cells[c] as string).trim();
      const v = Number(cell);
      if (cell === '' || !Number.isFinite(v)) {
        throw dataLoss(`${source}:${r + 1}: column ${c + 1} is '${cell}', not a finite number`, { source });
      }
      (channels[c] as number[]).push(v);
    }
  }
  return checkSensorMatrix(channels, source, 'series');
}

/** Reads a sample's sensor series, inline or from its .json / .csv file, as channels x steps. */
export async function readSensor(dir: string, entry: ManifestEntry, where: string): Promise<number[][] | undefined> {
  const s = entry.sensor;
  if (s === undefined) return undefined;
  if (Array.isArray(s)) return s;
  const file = path.join(dir, s.path);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw dataLoss(`${where}: sensor file '${s.path}' cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); fix the path or drop the sample`, { file });
  }
  if (path.extname(file).toLowerCase() === '.csv') return parseSensorCsv(text, file);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw dataLoss(`${file}: is not valid JSON (${(e as Error).message}); expected a channels x steps array`, { file });
  }
  try {
    return checkSensorMatrix(value, file, 'series');
  } catch (e) {
    throw dataLoss((e as Error).message, { file });
  }
}

/** Linear interpolation of one channel onto `steps` points spanning the same time range. */
function resampleChannel(ch: readonly number[], steps: number, out: Float32Array, offset: number): void {
  const n = ch.length;
  for (let t = 0; t < steps; t++) {
    const pos = steps === 1 ? 0 : (t * (n - 1)) / (steps - 1);
    const i = Math.floor(pos);
    const f = pos - i;
    const a = ch[i] as number;
    const b = ch[Math.min(i + 1, n - 1)] as number;
    out[offset + t] = a + (b - a) * f;
  }
}

export interface SensorShapeOptions {
  readonly channels?: number;
  readonly steps?: number;
  readonly length?: SensorLengthPolicy;
  readonly channelPolicy?: SensorChannelPolicy;
}

/**
 * Brings a channels x steps series to the model's shape, channel-major: resampled linearly (or
 * the most recent steps kept / zero-padded at the start with 'pad-crop').
 */
export function toModelSensor(series: readonly (readonly number[])[], where: string, options: SensorShapeOptions = {}): Float32Array {
  const channels = options.channels ?? SENSOR_CHANNELS;
  const steps = options.steps ?? SENSOR_STEPS;
  if (series.length !== channels && (options.channelPolicy ?? 'strict') === 'strict') {
    throw invalidArgument(
      `${where}: sensor series has ${series.length} channels but the model expects ${channels}; convert the data or set the channel policy to 'pad-truncate'`,
      { where, channels: series.length, expected: channels },
    );
  }
  const out = new Float32Array(channels * steps);
  for (let c = 0; c < Math.min(channels, series.length); c++) {
    const ch = series[c] as readonly number[];
    if ((options.length ?? 'resample') === 'resample') {
      resampleChannel(ch, steps, out, c * steps);
    } else {
      // Keep the most recent steps: incidents are logged at the end of the window.
      const keep = Math.min(steps, ch.length);
      for (let t = 0; t < keep; t++) out[c * steps + steps - keep + t] = ch[ch.length - keep + t] as number;
    }
  }
  return out;
}
