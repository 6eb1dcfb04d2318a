import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { synthesize } from '@fedmm/data';
import { UsageError, type Command } from '../command.js';

export const dataCommand: Command = {
  name: 'data',
  summary: 'generate the seeded multimodal benchmark (companies with train/test splits)',
  usage: `fedmm data synth --out DIR [--seed N]

Writes the "city safety operations" benchmark to DIR: a public pretraining split, and for each
company train/ and test/ folders (manifest.jsonl, labels.json, images, sensor files) plus
faults.json, the ground truth of the faults injected into train. Same seed, same bytes
(docs/DATA.md).`,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub !== 'synth') throw new UsageError(sub ? `unknown subcommand ${JSON.stringify(sub)}; use synth` : 'name a subcommand: synth');
    const { values } = parseArgs({ args: rest, options: { out: { type: 'string' }, seed: { type: 'string' } } });
    if (!values.out) throw new UsageError('--out DIR is required');
    const started = Date.now();
    let lastStage = '';
    const result = await synthesize({
      outDir: resolve(values.out),
      ...(values.seed !== undefined ? { seed: values.seed } : {}),
      onProgress: (p) => {
        if (p.stage !== lastStage) {
          lastStage = p.stage;
          process.stderr.write(`  ${p.stage}\n`);
        }
      },
    });
    process.stdout.write(`benchmark written to ${result.outDir} (seed ${result.seed}, ${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
    for (const d of result.datasets) {
      const m = d.modalities;
      process.stdout.write(`  ${`${d.company}/${d.split}`.padEnd(20)} ${String(d.samples).padStart(5)} samples  image ${m.image}  text ${m.text}  sensor ${m.sensor}\n`);
    }
    return 0;
  },
};
