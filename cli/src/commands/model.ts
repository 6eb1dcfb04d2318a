import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { DefaultPorts } from '@fedmm/service-kit';
import { makeTensor, exportPeft, type Tensor } from '@fedmm/tensor';
import { UsageError, type Command } from '../command.js';
import { RegistryClient } from '../demo/registry-client.js';

const DEFAULT_REGISTRY = process.env['FEDMM_REGISTRY_ADDR'] ?? `127.0.0.1:${DefaultPorts.registry}`;

const usage = `fedmm model <pretrain|export-peft> [options]

  fedmm model pretrain --data DIR --model-id ID [--registry ADDR] [--epochs N] [--seed S]
                       [--lr X] [--rank R] [--alpha A] [--out DIR]
      Pretrains the multimodal base on a public split (e.g. the benchmark's public/ folder),
      registers it (kind base) with its model card as config_json (classes, dims, tokenizer), and
      registers an initial adapter version (kind adapter, parent the base, LoRA B = 0) to use as a
      task's --base-version. Pretrained weights are cached under --out (default out/models), keyed
      by the data and the settings, so a second run reuses them.
  fedmm model export-peft VERSION --out DIR [--registry ADDR] [--base-model NAME]
      Writes an adapter version as a Hugging Face PEFT directory (adapter_model.safetensors,
      adapter_config.json).

--registry defaults to FEDMM_REGISTRY_ADDR or 127.0.0.1:${DefaultPorts.registry}.`;

function positiveNumber(flag: string, v: string | undefined, fallback: number, integer = false): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) throw new UsageError(`--${flag} must be a positive ${integer ? 'integer' : 'number'}, not ${JSON.stringify(v)}`);
  return n;
}

export const modelCommand: Command = {
  name: 'model',
  summary: 'pretrain and register the base model, export adapter versions for PEFT',
  usage,
  run: (argv) => runModel(argv, (t) => process.stdout.write(t)),
};

/** `fedmm model` with its output sent to `write`. */
export async function runModel(argv: string[], write: (text: string) => void): Promise<number> {
  const out = (line = ''): void => write(`${line}\n`);
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      registry: { type: 'string', default: DEFAULT_REGISTRY },
      'model-id': { type: 'string' },
      epochs: { type: 'string' },
      seed: { type: 'string' },
      lr: { type: 'string' },
      rank: { type: 'string' },
      alpha: { type: 'string' },
      out: { type: 'string' },
      'base-model': { type: 'string' },
    },
  });
  const [action, ...rest] = positionals;
  switch (action) {
    case 'pretrain': {
      if (rest.length > 0) throw new UsageError(`unexpected arguments: ${rest.join(' ')}`);
      if (!values.data) throw new UsageError('name the public split with --data DIR');
      if (!values['model-id']) throw new UsageError('name the model with --model-id ID');
      // tfjs loads only for the commands that train.
      const { initBackend } = await import('@fedmm/model');
      const { pretrainBase, registerBase } = await import('../demo/pretrain.js');
      const backend = await initBackend('wasm');
      const epochs = positiveNumber('epochs', values.epochs, 12, true);
      const seed = values.seed === undefined ? 1 : Number(values.seed);
      if (!Number.isInteger(seed)) throw new UsageError(`--seed must be an integer, not ${JSON.stringify(values.seed)}`);
      out(`pretraining on ${values.data} (${epochs} epochs, seed ${seed}, tfjs ${backend.backend})`);
      const p = await pretrainBase({
        publicDir: resolve(values.data),
        epochs,
        seed,
        lr: positiveNumber('lr', values.lr, 3e-3),
        cacheDir: resolve(values.out ?? 'out/models'),
        onEpoch: (e, n, loss) => out(`  epoch ${e}/${n}  loss ${loss.toFixed(4)}`),
      });
      out(p.cached ? `reused cached base ${p.cacheFile}` : `pretrained in ${p.seconds.toFixed(1)} s${p.cacheFile ? `, cached at ${p.cacheFile}` : ''}`);
      out(`accuracy on the public split: ${(100 * p.publicAccuracy).toFixed(1)} %`);
      const registry = new RegistryClient(values.registry);
      try {
        const r = await registerBase(registry, values['model-id'], p, {
          rank: positiveNumber('rank', values.rank, 8, true),
          alpha: positiveNumber('alpha', values.alpha, 16),
          seed,
        });
        out(`model ${r.modelId}`);
        out(`  base version     ${r.baseVersionId}  (${r.baseBytes} bytes)`);
        out(`  initial adapters ${r.adapterVersionId}  (${r.adapterBytes} bytes, rank ${r.card.lora.rank})`);
        out(`next: fedmm task create --model ${r.modelId} --base-version ${r.adapterVersionId} --member ... --rounds N`);
      } finally {
        registry.close();
        p.base.dispose();
      }
      return 0;
    }
    case 'export-peft': {
      const [versionId, ...extra] = rest;
      if (!versionId || extra.length > 0) throw new UsageError('name exactly one adapter version: fedmm model export-peft VERSION --out DIR');
      if (!values.out) throw new UsageError('name the output directory with --out DIR');
      const registry = new RegistryClient(values.registry);
      try {
        const { parseModelCard } = await import('../demo/model-card.js');
        const v = await registry.download(versionId);
        const card = parseModelCard((await registry.getModel(v.version.modelId)).configJson, v.version.modelId);
        const tensors = new Map<string, Tensor>([...v.tensors].map(([n, t]) => [n, makeTensor('F32', t.shape, t.data)]));
        const r = await exportPeft(resolve(values.out), {
          tensors,
          r: card.lora.rank,
          loraAlpha: card.lora.alpha,
          baseModel: values['base-model'] ?? `fedmm/${v.version.modelId}@${v.version.parentVersionId || 'base'}`,
          metadata: { 'fedmm.version': versionId },
        });
        out(`wrote ${r.modelPath} (${r.tensors.length} tensors, sha256 ${r.sha256})`);
        out(`wrote ${r.configPath}`);
      } finally {
        registry.close();
      }
      return 0;
    }
    default:
      throw new UsageError(action ? `unknown model action ${JSON.stringify(action)}: use pretrain or export-peft` : 'name an action: pretrain or export-peft');
  }
}
