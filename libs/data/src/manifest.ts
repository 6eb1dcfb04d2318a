import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { FedmmError, invalidArgument } from '@fedmm/core';

/** Name of the manifest inside a dataset folder. */
export const MANIFEST_FILE = 'manifest.jsonl';
/** Optional class list inside a dataset folder: a JSON array of label strings. */
export const LABELS_FILE = 'labels.json';

/** A sensor series stored beside the manifest (.json: channels x steps array; .csv: one row per step). */
export interface SensorRef {
  readonly path: string;
}

/** One line of manifest.jsonl as written by a company. */
export interface ManifestEntry {
  readonly id?: string;
  /** PNG or JPEG, relative to the dataset folder. */
  readonly image?: string;
  readonly text?: string;
  /** channels x steps, inline or in a file. */
  readonly sensor?: number[][] | SensorRef;
  readonly label: string;
}

/** A parsed manifest line with where it came from. */
export interface ManifestRecord {
  /** 1-based line number in the manifest. */
  readonly line: number;
  /** The entry's id, or `line-N` when the entry has none. */
  readonly id: string;
  readonly entry: ManifestEntry;
  /** The line exactly as read, so a cleaned manifest can copy it unchanged. */
  readonly raw: string;
}

/** A manifest line that could not be used. */
export interface ManifestIssue {
  readonly line: number;
  readonly field?: string;
  readonly message: string;
}

export interface ManifestReadResult {
  readonly file: string;
  readonly records: ManifestRecord[];
  readonly issues: ManifestIssue[];
}

const ALLOWED_FIELDS = new Set(['id', 'image', 'text', 'sensor', 'label']);
const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
const SENSOR_EXTENSIONS = new Set(['.json', '.csv']);
/** Long enough for any realistic window, small enough that one bad line cannot exhaust memory. */
export const MAX_SENSOR_STEPS = 1_000_000;
export const MAX_SENSOR_CHANNELS = 256;

function lineError(where: string, field: string | undefined, message: string): FedmmError {
  const prefix = field === undefined ? `${where}: ` : `${where}: field '${field}' `;
  return invalidArgument(prefix + message, field === undefined ? { where } : { where, field });
}

/** Checks that a path inside a manifest stays inside the dataset folder. */
export function checkRelativePath(p: string, where: string, field: string, extensions: ReadonlySet<string>): void {
  if (p.length === 0) throw lineError(where, field, 'is an empty path; give a path relative to the dataset folder');
  if (path.isAbsolute(p) || /^[a-zA-Z]:[\\/]/.test(p)) {
    throw lineError(where, field, `is the absolute path '${p}'; give a path relative to the dataset folder`);
  }
  const normal = path.posix.normalize(p.replaceAll('\\', '/'));
  if (normal === '..' || normal.startsWith('../')) {
    throw lineError(where, field, `'${p}' points outside the dataset folder; keep files inside it`);
  }
  const ext = path.extname(normal).toLowerCase();
  if (!extensions.has(ext)) {
    throw lineError(where, field, `'${p}' has extension '${ext || '(none)'}'; expected one of ${[...extensions].join(', ')}`);
  }
}

/** Validates an inline sensor series (channels x steps of finite numbers, equal lengths). */
export function checkSensorMatrix(value: unknown, where: string, field = 'sensor'): number[][] {
  if (!Array.isArray(value) || value.length === 0) {
    throw lineError(where, field, 'must be a non-empty array of channels, each an array of numbers (channels x steps)');
  }
  if (value.length > MAX_SENSOR_CHANNELS) {
    throw lineError(where, field, `has ${value.length} channels; at most ${MAX_SENSOR_CHANNELS} are accepted`);
  }
  let steps = -1;
  for (let c = 0; c < value.length; c++) {
    const ch: unknown = value[c];
    if (!Array.isArray(ch)) {
      throw lineError(where, field, `channel ${c} is not an array; the layout is channels x steps, e.g. [[1,2,3],[4,5,6]]`);
    }
    if (ch.length < 2) throw lineError(where, field, `channel ${c} has ${ch.length} steps; a series needs at least 2`);
    if (ch.length > MAX_SENSOR_STEPS) throw lineError(where, field, `channel ${c} has ${ch.length} steps; at most ${MAX_SENSOR_STEPS}`);
    if (steps >= 0 && ch.length !== steps) {
      throw lineError(where, field, `channel ${c} has ${ch.length} steps but channel 0 has ${steps}; all channels need the same length`);
    }
    steps = ch.length;
    for (let t = 0; t < ch.length; t++) {
      const x: unknown = ch[t];
      if (typeof x !== 'number' || !Number.isFinite(x)) {
        throw lineError(where, field, `channel ${c} step ${t} is ${JSON.stringify(x) ?? String(x)}; every value must be a finite number`);
      }
    }
  }
  return value as number[][];
}

/** Parses and validates one manifest line; `where` is `file:line` and starts every error message. */
export function parseManifestLine(raw: string, where: string): ManifestEntry {
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch (e) {
    throw lineError(where, undefined, `is not valid JSON (${(e as Error).message}); each line must be one JSON object`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw lineError(where, undefined, 'is not a JSON object; each line must be an object like {"image":"a.png","label":"fire_smoke"}');
  }
  const o = obj as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!ALLOWED_FIELDS.has(key)) {
      throw lineError(where, key, `is not a manifest field; the fields are ${[...ALLOWED_FIELDS].join(', ')}`);
    }
  }
  const out: { -readonly [K in keyof ManifestEntry]: ManifestEntry[K] } = { label: '' };
  if (o['label'] === undefined) throw lineError(where, 'label', 'is missing; every sample needs a label (a class name string)');
  if (typeof o['label'] !== 'string' || o['label'].trim() === '') {
    throw lineError(where, 'label', `is ${JSON.stringify(o['label'])}; it must be a non-empty class name string`);
  }
  out.label = o['label'];
  if (o['id'] !== undefined) {
    if (typeof o['id'] !== 'string' || o['id'].length === 0) {
      throw lineError(where, 'id', `is ${JSON.stringify(o['id'])}; it must be a non-empty string when given`);
    }
    out.id = o['id'];
  }
  if (o['image'] !== undefined) {
    if (typeof o['image'] !== 'string') throw lineError(where, 'image', 'must be a path string to a PNG or JPEG file');
    checkRelativePath(o['image'], where, 'image', IMAGE_EXTENSIONS);
    out.image = o['image'];
  }
  if (o['text'] !== undefined) {
    if (typeof o['text'] !== 'string') throw lineError(where, 'text', 'must be a string');
    out.text = o['text'];
  }
  const sensor = o['sensor'];
  if (sensor !== undefined) {
    if (Array.isArray(sensor)) {
      out.sensor = checkSensorMatrix(sensor, where);
    } else if (typeof sensor === 'object' && sensor !== null && typeof (sensor as { path?: unknown }).path === 'string') {
      const keys = Object.keys(sensor);
      if (keys.length !== 1) throw lineError(where, 'sensor', 'as a file reference must be exactly {"path": "..."}');
      const p = (sensor as { path: string }).path;
      checkRelativePath(p, where, 'sensor.path', SENSOR_EXTENSIONS);
      out.sensor = { path: p };
    } else {
      throw lineError(where, 'sensor', 'must be channels x steps numbers ([[...],[...]]) or {"path": "series.csv"}');
    }
  }
  if (out.image === undefined && out.text === undefined && out.sensor === undefined) {
    throw lineError(where, undefined, "has no 'image', 'text' or 'sensor'; a sample needs at least one modality");
  }
  return out;
}

/** Yields the non-blank lines of a JSONL file with their 1-based line numbers, without loading the whole file. */
export async function* readJsonlLines(file: string): AsyncGenerator<{ line: number; raw: string }> {
  const stream = createReadStream(file, { encoding: 'utf8' });
  const rl = createInterface({ input: stream, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const raw of rl) {
      line++;
      if (raw.trim() === '') continue;
      yield { line, raw };
    }
  } finally {
    rl.close();
    stream.destroy();
  }
}

export interface ReadManifestOptions {
  /** 'throw' (default) stops at the first bad line; 'collect' returns every bad line in `issues`. */
  readonly onInvalid?: 'throw' | 'collect';
  /** Name of the manifest file inside the folder (default manifest.jsonl). */
  readonly manifest?: string;
}

/** Reads and validates a dataset's manifest, line by line; errors name `file:line` and the field. */
export async function readManifest(dir: string, options: ReadManifestOptions = {}): Promise<ManifestReadResult> {
  const file = path.join(dir, options.manifest ?? MANIFEST_FILE);
  const collect = options.onInvalid === 'collect';
  const records: ManifestRecord[] = [];
  const issues: ManifestIssue[] = [];
  const seenIds = new Map<string, number>();
  try {
    for await (const { line, raw } of readJsonlLines(file)) {
      const where = `${file}:${line}`;
      try {
        const entry = parseManifestLine(raw, where);
        const id = entry.id ?? `line-${line}`;
        const first = seenIds.get(id);
        if (first !== undefined) {
          throw lineError(where, 'id', `'${id}' is already used on line ${first}; sample ids must be unique`);
        }
        seenIds.set(id, line);
        records.push({ line, id, entry, raw });
      } catch (e) {
        if (!collect || !(e instanceof FedmmError)) throw e;
        const field = e.details['field'];
        issues.push(typeof field === 'string' ? { line, field, message: e.message } : { line, message: e.message });
      }
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new FedmmError('NOT_FOUND', `${file} does not exist; a dataset folder needs a ${MANIFEST_FILE} with one JSON sample per line`, { file });
    }
    throw e;
  }
  return { file, records, issues };
}

/** Outcome of matching manifest labels against a class list. */
export interface LabelVocabulary {
  readonly classes: readonly string[];
  /** Where the class list came from. */
  readonly source: 'given' | 'labels.json' | 'manifest';
  /** Labels in the manifest that are not in the class list, with the lines that use them. */
  readonly unknown: ReadonlyArray<{ readonly label: string; readonly lines: readonly number[] }>;
}

/** Reads a labels.json class list, or undefined when the folder has none. */
export async function readLabelsFile(dir: string): Promise<string[] | undefined> {
  const file = path.join(dir, LABELS_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`${file}: is not valid JSON (${(e as Error).message}); it must be an array of class names`, { file });
  }
  return checkClassList(value, file);
}

/** Validates a class list: non-empty, unique, non-empty strings. */
export function checkClassList(value: unknown, source: string): string[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw invalidArgument(`${source}: the class list must be a non-empty array of class names`, { source });
  }
  const seen = new Set<string>();
  for (const c of value) {
    if (typeof c !== 'string' || c.trim() === '') {
      throw invalidArgument(`${source}: class ${JSON.stringify(c)} is not a non-empty string`, { source });
    }
    if (seen.has(c)) throw invalidArgument(`${source}: class '${c}' is listed twice; class names must be unique`, { source });
    seen.add(c);
  }
  return value as string[];
}

/**
 * Decides the class list: the task's list when given, else the folder's labels.json, else the sorted
 * unique labels of the manifest; reports labels the list does not know.
 */
export async function resolveLabels(dir: string, records: readonly ManifestRecord[], given?: readonly string[]): Promise<LabelVocabulary> {
  let classes: readonly string[];
  let source: LabelVocabulary['source'];
  if (given !== undefined) {
    classes = checkClassList([...given], 'classes');
    source = 'given';
  } else {
    const fromFile = await readLabelsFile(dir);
    if (fromFile !== undefined) {
      classes = fromFile;
      source = 'labels.json';
    } else {
      classes = [...new Set(records.map((r) => r.entry.label))].sort();
      source = 'manifest';
    }
  }
  const known = new Set(classes);
  const unknown = new Map<string, number[]>();
  for (const r of records) {
    if (known.has(r.entry.label)) continue;
    const lines = unknown.get(r.entry.label) ?? [];
    lines.push(r.line);
    unknown.set(r.entry.label, lines);
  }
  return { classes, source, unknown: [...unknown].map(([label, lines]) => ({ label, lines })) };
}
