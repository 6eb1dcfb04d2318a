import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { failedPrecondition, invalidArgument } from '@fedmm/core';
import { MANIFEST_FILE, readJsonlLines } from '../manifest.js';
import type { QualityReport } from './inspect.js';

/** Name of the cleaned manifest written next to the original. */
export const CLEANED_MANIFEST_FILE = 'manifest.cleaned.jsonl';

export interface FixOptions {
  /** What to do with suspected label errors: drop the sample (default), relabel it, or keep it. */
  readonly labelIssues?: 'drop' | 'relabel' | 'keep';
  /** Drop later copies of duplicate samples (default true). */
  readonly dropDuplicates?: boolean;
  /** Drop samples with dead sensor channels (default false: the other modalities may still be good). */
  readonly dropFlatLines?: boolean;
  /** Output file name inside the dataset folder. */
  readonly output?: string;
}

export interface FixResult {
  readonly file: string;
  readonly kept: number;
  readonly dropped: Array<{ line: number; reason: string }>;
  readonly relabelled: Array<{ line: number; from: string; to: string }>;
}

/**
 * Writes a cleaned manifest next to the original, never touching it: drops invalid lines, unreadable
 * files, unknown labels and later duplicates, and drops or relabels suspected label errors.
 */
export async function fixManifest(dir: string, report: QualityReport, options: FixOptions = {}): Promise<FixResult> {
  const source = path.resolve(report.manifest);
  const out = path.resolve(dir, options.output ?? CLEANED_MANIFEST_FILE);
  if (out === source || path.basename(out) === MANIFEST_FILE) {
    throw invalidArgument(`refusing to write the cleaned manifest over ${source}; the original is never modified, choose another output name`);
  }
  const bytes = await readFile(source);
  if (createHash('sha256').update(bytes).digest('hex') !== report.manifestSha256) {
    throw failedPrecondition(`${source} changed since the quality report was made; run the inspection again before fixing`, { manifest: source });
  }
  const drop = new Map<number, string>();
  const add = (line: number, reason: string): void => {
    if (!drop.has(line)) drop.set(line, reason);
  };
  for (const e of report.manifestErrors) add(e.line, 'invalid manifest line');
  for (const e of report.decodeErrors) add(e.line, `unreadable ${e.field}`);
  for (const u of report.unknownLabels) for (const l of u.lines) add(l, `unknown label '${u.label}'`);
  if (options.dropDuplicates ?? true) {
    for (const g of report.duplicates.samples) for (const d of g.duplicates) add(d.line, `${g.kind} duplicate of ${g.keep.id}`);
  }
  if (options.dropFlatLines ?? false) for (const f of report.sensors.flatLines) add(f.line, `flat sensor channel ${f.channel}`);
  const mode = options.labelIssues ?? 'drop';
  const relabel = new Map<number, { from: string; to: string }>();
  for (const i of report.labelIssues.issues) {
    if (mode === 'drop') add(i.line, `suspected label error (${i.label} -> ${i.suggested})`);
    else if (mode === 'relabel') relabel.set(i.line, { from: i.label, to: i.suggested });
  }
  const lines: string[] = [];
  const relabelled: FixResult['relabelled'] = [];
  for await (const { line, raw } of readJsonlLines(source)) {
    if (drop.has(line)) continue;
    const change = relabel.get(line);
    if (change !== undefined) {
      const obj = JSON.parse(raw) as Record<string, unknown>;
      obj['label'] = change.to;
      lines.push(JSON.stringify(obj));
      relabelled.push({ line, ...change });
    } else {
      lines.push(raw);
    }
  }
  const tmp = `${out}.${process.pid}.tmp`;
  await writeFile(tmp, lines.length > 0 ? lines.join('\n') + '\n' : '');
  await rename(tmp, out);
  return { file: out, kept: lines.length, dropped: [...drop].map(([line, reason]) => ({ line, reason })).sort((a, b) => a.line - b.line), relabelled };
}
