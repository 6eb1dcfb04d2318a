import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadSamples } from '../loader.js';
import { readManifest } from '../manifest.js';
import { INCIDENT_CLASSES } from './classes.js';
import { DEFAULT_COMPANIES, PUBLIC_SPEC, type CompanySpec } from './presets.js';
import { synthesize, type InjectedFaults } from './synthesize.js';

/** The default consortium, shrunk so the test stays fast; everything else as shipped. */
const small: CompanySpec[] = DEFAULT_COMPANIES.map((c) => ({ ...c, trainSize: Math.min(c.trainSize, 40), testSize: 12 }));
const smallPublic: CompanySpec = { ...PUBLIC_SPEC, trainSize: 16 };

async function treeDigest(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = path.join(entry.parentPath, entry.name);
    out.set(path.relative(dir, file), createHash('sha256').update(await readFile(file)).digest('hex'));
  }
  return out;
}

test('the same seed gives byte-identical files; another seed gives other data', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'fedmm-synth-'));
  const opts = { companies: small.slice(2), publicSpec: smallPublic };
  await synthesize({ outDir: path.join(root, 'a'), seed: 7, ...opts });
  await synthesize({ outDir: path.join(root, 'b'), seed: 7, ...opts });
  await synthesize({ outDir: path.join(root, 'c'), seed: 8, ...opts });
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((d) => treeDigest(path.join(root, d))));
  assert.ok(a!.size > 100, `expected many files, got ${a!.size}`);
  assert.deepEqual([...a!].sort(), [...b!].sort());
  assert.notEqual(a!.get('smallcity/train/manifest.jsonl'), c!.get('smallcity/train/manifest.jsonl'));
  assert.notEqual(a!.get('public/images/public-0001.png'), c!.get('public/images/public-0001.png'));
  // Regenerating over an earlier benchmark is allowed and gives the same bytes again.
  await synthesize({ outDir: path.join(root, 'a'), seed: 7, ...opts });
  assert.deepEqual([...(await treeDigest(path.join(root, 'a')))].sort(), [...a!].sort());
  await writeFile(path.join(root, 'c', '..', 'stranger.txt'), 'x');
  await assert.rejects(synthesize({ outDir: root, seed: 7, ...opts }), /not empty and holds no benchmark\.json/);
});

test('companies differ as specified: missing modalities, label skew, storage, test and public splits', async () => {
  const out = await mkdtemp(path.join(tmpdir(), 'fedmm-synth-'));
  const result = await synthesize({ outDir: out, seed: 'hetero', companies: small, publicSpec: smallPublic });
  const manifest = async (rel: string) => (await readManifest(path.join(out, rel))).records.map((r) => r.entry);
  const homesafe = await manifest('homesafe/train');
  assert.ok(homesafe.every((e) => e.image === undefined), 'homesafe has no images');
  assert.ok(homesafe.some((e) => e.text !== undefined) && homesafe.some((e) => e.sensor !== undefined));
  const metroops = await manifest('metroops/test');
  assert.ok(metroops.every((e) => e.text === undefined), 'metroops has no text, in test too');
  assert.ok(metroops.filter((e) => e.sensor !== undefined).every((e) => !Array.isArray(e.sensor)), 'metroops keeps sensors in CSV files');
  const gridco = await manifest('gridco/train');
  const energy = gridco.filter((e) => e.label === 'transformer_overheat' || e.label === 'line_fault').length;
  assert.equal(energy, 28, '70% of gridco is energy incidents');
  assert.ok(gridco.some((e) => e.image === undefined) && gridco.some((e) => e.image !== undefined), 'modalities missing per sample too');
  const pub = await manifest('public');
  assert.equal(pub.length, 16);
  assert.ok(pub.every((e) => e.image !== undefined && e.text !== undefined && Array.isArray(e.sensor)));
  assert.deepEqual(new Set(pub.map((e) => e.label)), new Set(INCIDENT_CLASSES));
  assert.deepEqual(result.datasets.map((d) => `${d.company}/${d.split}`), [
    'gridco/train', 'gridco/test', 'homesafe/train', 'homesafe/test', 'metroops/train', 'metroops/test', 'smallcity/train', 'smallcity/test', 'public/public',
  ]);
  // Every split loads into the model's shapes.
  for (const d of result.datasets) {
    const ds = await loadSamples(d.dir, { classes: INCIDENT_CLASSES });
    assert.equal(ds.samples.length, d.samples);
  }
  // Faults are injected only where specified, and their ground truth matches the manifest.
  const faults = JSON.parse(await readFile(result.faults['smallcity']!, 'utf8')) as InjectedFaults;
  assert.equal(faults.labelNoise.length, 8, '20% of 40');
  assert.deepEqual(faults.duplicates.map((d) => d.kind).sort(), ['exact', 'exact', 'exact', 'near', 'near', 'near']);
  const sc = (await readManifest(path.join(out, 'smallcity/train'))).records;
  assert.equal(sc.length, 46);
  const byId = new Map(sc.map((r) => [r.id, r]));
  for (const f of faults.labelNoise) assert.equal(byId.get(f.id)!.entry.label, f.given);
  for (const d of faults.duplicates.filter((x) => x.kind === 'exact')) {
    const [a, b] = [byId.get(d.id)!.entry, byId.get(d.of)!.entry];
    assert.equal(a.text, b.text);
    assert.deepEqual(await readFile(path.join(out, 'smallcity/train', a.image!)), await readFile(path.join(out, 'smallcity/train', b.image!)));
    assert.ok(byId.get(d.of)!.line < byId.get(d.id)!.line, 'the original comes first');
  }
  const gridFaults = JSON.parse(await readFile(result.faults['gridco']!, 'utf8')) as InjectedFaults;
  assert.equal(gridFaults.labelNoise.length + gridFaults.duplicates.length, 0);
});
