import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { INCIDENT_CLASSES } from '../synth/classes.js';
import { DEFAULT_COMPANIES } from '../synth/presets.js';
import { synthesize, type InjectedFaults } from '../synth/synthesize.js';
import { readManifest } from '../manifest.js';
import { fixManifest } from './fix.js';
import { inspectDataset, type QualityReport } from './inspect.js';
import { writeReport } from './report.js';

const smallcity = DEFAULT_COMPANIES.find((c) => c.name === 'smallcity')!;

/** The shipped smallcity company (80 samples, 20% flipped labels, 3 exact and 3 near duplicates, dead and glitched sensors). */
async function faultyCompany(): Promise<{ dir: string; faults: InjectedFaults }> {
  const out = await mkdtemp(path.join(tmpdir(), 'fedmm-inspect-'));
  const r = await synthesize({ outDir: out, companies: [{ ...smallcity, testSize: 0 }], publicSpec: null });
  return { dir: path.join(out, 'smallcity', 'train'), faults: JSON.parse(await readFile(r.faults['smallcity']!, 'utf8')) as InjectedFaults };
}

const shared = faultyCompany().then(async (f) => ({ ...f, report: await inspectDataset(f.dir, { classes: INCIDENT_CLASSES }) }));

function score(found: readonly string[], truth: readonly string[]): { precision: number; recall: number } {
  const t = new Set(truth);
  const hits = found.filter((id) => t.has(id)).length;
  return { precision: found.length === 0 ? 0 : hits / found.length, recall: truth.length === 0 ? 1 : hits / truth.length };
}

test('cross-validated confident learning finds the injected label noise', async () => {
  const { report, faults } = await shared;
  // Measured with the default seed: precision 0.63, recall 0.63 (10 of 16 flipped labels); over
  // seeds s1-s3 precision 0.52-0.65 and recall 0.63-0.94. Thresholds sit a little below.
  const s = score(report.labelIssues.issues.map((i) => i.id), faults.labelNoise.map((f) => f.id));
  assert.equal(report.labelIssues.method, 'cross-validated');
  assert.ok(s.recall >= 0.55, `label-noise recall ${s.recall}`);
  assert.ok(s.precision >= 0.5, `label-noise precision ${s.precision}`);
  const truth = new Map(faults.labelNoise.map((f) => [f.id, f.true]));
  const caught = report.labelIssues.issues.filter((i) => truth.has(i.id));
  const right = caught.filter((i) => i.suggested === truth.get(i.id)).length;
  assert.ok(right / caught.length >= 0.7, `suggested the true class for ${right} of ${caught.length}`);
});

test('exact and near duplicates are found, the original kept; dead sensor channels are found', async () => {
  const { report, faults } = await shared;
  const flagged = report.duplicates.samples.flatMap((g) => g.duplicates.map((d) => d.id));
  const s = score(flagged, faults.duplicates.map((d) => d.id));
  assert.ok(s.recall >= 0.9, `duplicate recall ${s.recall}`);
  assert.ok(s.precision >= 0.9, `duplicate precision ${s.precision}`);
  for (const d of faults.duplicates) {
    const group = report.duplicates.samples.find((g) => g.duplicates.some((x) => x.id === d.id));
    assert.equal(group?.keep.id, d.of);
    assert.equal(group?.kind, d.kind);
  }
  assert.deepEqual(report.sensors.flatLines.map((f) => `${f.id}/${f.channel}`).sort(), faults.flatLines.map((f) => `${f.id}/${f.channel}`).sort());
  for (const o of faults.sensorOutliers) assert.ok(report.sensors.outliers.some((x) => x.id === o.id && x.channel === o.channel), `gain glitch on ${o.id}`);
  assert.equal(report.summary.samples, 86);
  assert.equal(Object.values(report.classBalance.counts).reduce((a, b) => a + b, 0), 86);
  assert.equal(report.modalities.image.present + report.modalities.image.missing, 86);
});

test('with a model, confident disagreement flags exactly the samples it contradicts', async () => {
  const { dir, faults } = await shared;
  const truth = new Map(faults.labelNoise.map((f) => [f.id, INCIDENT_CLASSES.indexOf(f.true as never)]));
  // A model that knows the true class, with some uncertainty.
  const report = await inspectDataset(dir, {
    classes: INCIDENT_CLASSES,
    predictProba: async (samples) =>
      samples.map((s) => {
        const p = new Float32Array(INCIDENT_CLASSES.length).fill(0.2 / 7);
        p[truth.get(s.id) ?? s.label] = 0.8;
        return p;
      }),
  });
  assert.equal(report.labelIssues.method, 'model');
  assert.deepEqual(report.labelIssues.issues.map((i) => i.id).sort(), [...truth.keys()].sort());
});

test('a truncated image is a decode error naming the file and line, and the rest is still inspected', async () => {
  const { dir } = await faultyCompany();
  const records = (await readManifest(dir)).records;
  const victim = records.find((r) => r.entry.image !== undefined)!;
  const file = path.join(dir, victim.entry.image!);
  const bytes = await readFile(file);
  await writeFile(file, bytes.subarray(0, bytes.length >> 1));
  const report = await inspectDataset(dir, { classes: INCIDENT_CLASSES, repeats: 1 });
  assert.equal(report.decodeErrors.length, 1);
  assert.equal(report.decodeErrors[0]!.id, victim.id);
  assert.match(report.decodeErrors[0]!.message, new RegExp(`manifest\\.jsonl:${victim.line}: .*corrupt PNG`));
  assert.equal(report.summary.usable, records.length - 1);
});

test('--fix writes a cleaned manifest beside the original and leaves the original byte-identical', async () => {
  const { dir, report, faults } = await shared;
  const manifest = path.join(dir, 'manifest.jsonl');
  const before = await readFile(manifest);
  const dropped = await fixManifest(dir, report);
  assert.deepEqual(await readFile(manifest), before);
  const cleaned = (await readManifest(dir, { manifest: 'manifest.cleaned.jsonl' })).records;
  const ids = new Set(cleaned.map((r) => r.id));
  for (const d of faults.duplicates) assert.ok(!ids.has(d.id) && ids.has(d.of), `dropped ${d.id}, kept ${d.of}`);
  for (const i of report.labelIssues.issues) assert.ok(!ids.has(i.id));
  assert.equal(cleaned.length, dropped.kept);
  const relabel = await fixManifest(dir, report, { labelIssues: 'relabel', output: 'manifest.relabelled.jsonl' });
  const relabelled = new Map((await readManifest(dir, { manifest: 'manifest.relabelled.jsonl' })).records.map((r) => [r.id, r.entry.label]));
  for (const i of report.labelIssues.issues) assert.equal(relabelled.get(i.id), i.suggested);
  assert.equal(relabel.relabelled.length, report.labelIssues.issues.length);
  assert.deepEqual(await readFile(manifest), before);
  await assert.rejects(fixManifest(dir, report, { output: 'manifest.jsonl' }), /never modified/);
  const stale: QualityReport = { ...report, manifestSha256: '0'.repeat(64) };
  await assert.rejects(fixManifest(dir, stale), /changed since the quality report/);
});

test('the report is written as JSON and as a readable HTML page', async () => {
  const { report } = await shared;
  const out = await mkdtemp(path.join(tmpdir(), 'fedmm-report-'));
  const files = await writeReport(report, out);
  const json = JSON.parse(await readFile(files.json, 'utf8')) as QualityReport;
  assert.equal(json.summary.labelIssues, report.labelIssues.issues.length);
  const html = await readFile(files.html, 'utf8');
  assert.match(html, /<svg[^>]*aria-label="class balance"/);
  assert.match(html, /<img src="data:image\/png;base64,/);
  for (const i of report.labelIssues.issues) assert.ok(html.includes(i.id));
  assert.ok(!html.includes('<script'), 'no script in the page');
});
