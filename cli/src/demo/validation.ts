import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { synthesize, type CompanySpec } from '@fedmm/data';

/**
 * The platform's validation set of a task, the one the valuation service scores candidate models
 * on (`FEDMM_VALUATION_DATA_DIR/<task>`): `perCompany` clean samples drawn from each company's
 * distribution with a seed of their own, so they are disjoint from every train and test split. In a
 * consortium each company hands the operator such a sample when it joins; here it is generated.
 * Reused when it was made with the same seed, companies, size and class list.
 */
export async function ensureValidationSet(dir: string, o: { seed: number; companies: readonly CompanySpec[]; perCompany: number; classes: readonly string[] }): Promise<{ samples: number; reused: boolean }> {
  const specFile = join(dir, '.demo-spec.json');
  const digest = createHash('sha256').update(JSON.stringify({ seed: o.seed, companies: o.companies, perCompany: o.perCompany, classes: o.classes })).digest('hex');
  const manifest = join(dir, 'manifest.jsonl');
  if (existsSync(specFile) && existsSync(manifest) && readFileSync(specFile, 'utf8').trim() === digest) {
    return { samples: readFileSync(manifest, 'utf8').split('\n').filter(Boolean).length, reused: true };
  }
  rmSync(dir, { recursive: true, force: true });
  // No faults: a validation set with flipped labels would reward the companies that learn them.
  const specs = o.companies.map(({ faults: _faults, ...c }) => ({ ...c, trainSize: o.perCompany, testSize: 0 }));
  await synthesize({ outDir: dir, seed: `${o.seed}/platform-validation`, companies: specs, publicSpec: null });
  // One manifest over every company's split; paths stay relative to the set's own folder.
  const lines: string[] = [];
  for (const c of specs) {
    const prefix = `${c.name}/train/`;
    for (const line of readFileSync(join(dir, c.name, 'train', 'manifest.jsonl'), 'utf8').split('\n')) {
      if (!line.trim()) continue;
      const e = JSON.parse(line) as { image?: string; sensor?: unknown };
      if (typeof e.image === 'string') e.image = prefix + e.image;
      const sensor = e.sensor as { path?: string } | undefined;
      if (sensor && typeof sensor === 'object' && !Array.isArray(sensor) && typeof sensor.path === 'string') e.sensor = { path: prefix + sensor.path };
      lines.push(JSON.stringify(e));
    }
  }
  writeFileSync(manifest, `${lines.join('\n')}\n`);
  writeFileSync(join(dir, 'labels.json'), `${JSON.stringify(o.classes, null, 2)}\n`);
  writeFileSync(specFile, `${digest}\n`);
  return { samples: lines.length, reused: false };
}
