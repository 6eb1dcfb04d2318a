import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FedmmError, createLogger } from '@fedmm/core';
import { Agent, readArtifact, toModelSamples, ADAPTER_METADATA_KEYS } from '@fedmm/agent';
import { fixManifest, inspectDataset, writeReport, type InspectOptions, type QualityReport } from '@fedmm/data';
import { BASE_METADATA_KEYS, initBackend, loadBase, predictProba, type AdapterSet, type BackendChoice, type BaseModel } from '@fedmm/model';
import { readClientTlsFiles, type TlsMaterial } from '@fedmm/pki';
import { UsageError, type Command } from '../command.js';

const usage = `fedmm client <run|inspect> [options]

fedmm client run --gateway HOST:PORT --tenant NAME (--pki DIR | --cert FILE --key FILE --ca FILE)
                 --data DIR [--test DIR] --task ID [--task ID ...] --work DIR
                 [--seed N] [--classes a,b,c] [--accept-terms] [--personalize] [--backend wasm|cpu|auto]
                 [--task-recheck SECONDS]
  Runs the company agent until SIGTERM or Ctrl-C: subscribes to the tasks' rounds, trains the
  round's adapters on --data when selected and uploads the update over mTLS. State, downloaded
  versions and evaluation.json live in --work; restarting with the same --work never uploads
  twice for a round. With --test every published version is evaluated on the local test set,
  and with --personalize a private adapter is trained on top and evaluated too.
  It may start before its tasks exist: a task the platform does not know yet is checked again
  with backoff, at least every --task-recheck seconds (default 15), and joined once created,
  while the other tasks run. A task that exists without this tenant as a member is an error.
  --accept-terms signs the tasks' consortium terms with the client key (members who have not
  accepted are not selected).

fedmm client inspect DIR [--fix] [--relabel] [--classes a,b,c] [--model FILE [--base FILE]]
  Writes DIR/quality-report.json and DIR/quality-report.html: manifest and decode errors,
  duplicates, class balance, modalities, sensor flat lines and outliers, suspected label errors.
  Label errors come from the shared model when --model is given (an adapter version file with
  its --base, or a base file alone), else from cross-validated confident learning. --fix writes
  DIR/manifest.cleaned.jsonl (never touching manifest.jsonl); --relabel relabels suspected label
  errors instead of dropping them.`;

function listArg(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function readPem(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new FedmmError('NOT_FOUND', `cannot read the ${what} at ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** TLS material from a PKI directory (its root or its clients/ folder) or from three files. */
export function tlsMaterialOf(v: { pki?: string | undefined; cert?: string | undefined; key?: string | undefined; ca?: string | undefined }, tenant: string): TlsMaterial {
  if (v.pki) {
    const dir = resolve(v.pki);
    if (existsSync(join(dir, 'clients'))) return readClientTlsFiles(dir, tenant);
    return { caPem: readPem(join(dir, 'ca.crt'), 'CA certificate'), certPem: readPem(join(dir, `${tenant}.crt`), 'client certificate'), keyPem: readPem(join(dir, `${tenant}.key`), 'client key') };
  }
  if (v.cert && v.key && v.ca) return { caPem: readPem(v.ca, 'CA certificate'), certPem: readPem(v.cert, 'client certificate'), keyPem: readPem(v.key, 'client key') };
  throw new UsageError('the gateway needs mTLS: pass --pki DIR, or all of --cert, --key and --ca');
}

async function runAgent(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      gateway: { type: 'string' }, tenant: { type: 'string' }, pki: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' }, ca: { type: 'string' },
      data: { type: 'string' }, test: { type: 'string' }, task: { type: 'string', multiple: true }, work: { type: 'string' }, seed: { type: 'string' },
      classes: { type: 'string' }, 'accept-terms': { type: 'boolean', default: false }, personalize: { type: 'boolean', default: false }, backend: { type: 'string', default: 'wasm' },
      'task-recheck': { type: 'string' },
    },
  });
  for (const k of ['gateway', 'tenant', 'data', 'work'] as const) if (!values[k]) throw new UsageError(`--${k} is required`);
  if (!values.task || values.task.length === 0) throw new UsageError('name at least one --task ID');
  const seed = values.seed === undefined ? 0 : Number(values.seed);
  if (!Number.isSafeInteger(seed)) throw new UsageError(`--seed must be an integer, got ${values.seed}`);
  const recheck = values['task-recheck'] === undefined ? undefined : Number(values['task-recheck']);
  if (recheck !== undefined && !(Number.isFinite(recheck) && recheck > 0)) throw new UsageError(`--task-recheck must be a positive number of seconds, got ${values['task-recheck']}`);
  const tenant = values.tenant!;
  const tls = tlsMaterialOf(values, tenant);
  await initBackend(values.backend as BackendChoice);
  const classes = listArg(values.classes);
  const agent = new Agent({
    gateway: values.gateway!,
    tls,
    tenant,
    dataDir: values.data!,
    ...(values.test ? { testDir: values.test } : {}),
    workDir: values.work!,
    taskIds: values.task,
    seed,
    ...(classes ? { classes } : {}),
    acceptTerms: values['accept-terms'],
    personalize: values.personalize,
    backend: values.backend as BackendChoice,
    ...(recheck !== undefined ? { taskWait: { baseMs: Math.min(1000, recheck * 1000), capMs: recheck * 1000 } } : {}),
    log: createLogger({ component: 'agent' }),
  });
  const ac = new AbortController();
  const stop = (sig: NodeJS.Signals): void => {
    if (ac.signal.aborted) process.exit(130);
    process.stderr.write(`fedmm client: ${sig}, stopping (an interrupted upload resumes on the next start)\n`);
    ac.abort(new FedmmError('ABORTED', `stopped by ${sig}`));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    await agent.run(ac.signal);
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
  return 0;
}

/** Base model and adapters from --model (adapter file or base file) and --base. */
function sharedModelOf(modelFile: string, baseFile: string | undefined): { base: BaseModel; adapters: AdapterSet | undefined } {
  const model = readArtifact(resolve(modelFile));
  if (model.metadata[BASE_METADATA_KEYS.config] !== undefined) return { base: loadBase({ tensors: model.tensors, metadata: { ...model.metadata } }), adapters: undefined };
  if (!baseFile) throw new UsageError(`${modelFile} holds adapters; pass the base model's file with --base`);
  const b = readArtifact(resolve(baseFile));
  const base = loadBase({ tensors: b.tensors, metadata: { ...b.metadata } });
  const lora = [...model.tensors].find(([n]) => n.endsWith('.lora_A'));
  if (!lora) throw new FedmmError('INVALID_ARGUMENT', `${modelFile} holds neither a base model nor LoRA adapters`);
  const rank = lora[1].shape[0]!;
  const alpha = Number(model.metadata[ADAPTER_METADATA_KEYS.alpha] ?? rank);
  return { base, adapters: { rank, alpha, tensors: model.tensors } };
}

function printSummary(r: QualityReport): void {
  const s = r.summary;
  const out = process.stdout;
  out.write(`data-quality report for ${r.dataset}\n`);
  out.write(`  lines ${s.lines}, samples ${s.samples}, usable ${s.usable}\n`);
  out.write(`  manifest errors ${s.manifestErrors}, decode errors ${s.decodeErrors}, unknown labels ${s.unknownLabels}\n`);
  out.write(`  duplicate samples ${s.duplicateSamples}, sensor outliers ${s.sensorOutliers}, flat lines ${s.flatLines}\n`);
  out.write(`  suspected label errors ${s.labelIssues} (${r.labelIssues.method === 'model' ? 'confident disagreement with the shared model' : 'cross-validated confident learning'})\n`);
  const counts = Object.entries(r.classBalance.counts).map(([k, v]) => `${k} ${v}`).join(', ');
  out.write(`  classes: ${counts}${r.classBalance.missingClasses.length ? `; missing: ${r.classBalance.missingClasses.join(', ')}` : ''}\n`);
}

async function inspect(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { fix: { type: 'boolean', default: false }, relabel: { type: 'boolean', default: false }, classes: { type: 'string' }, model: { type: 'string' }, base: { type: 'string' }, seed: { type: 'string' } },
  });
  const dir = positionals[0];
  if (!dir) throw new UsageError('name the dataset folder: fedmm client inspect DIR');
  const classes = listArg(values.classes);
  const options: { -readonly [K in keyof InspectOptions]: InspectOptions[K] } = {
    ...(classes ? { classes } : {}),
    ...(values.seed !== undefined ? { seed: values.seed } : {}),
    onProgress: (p) => {
      if (p.done === p.total) process.stderr.write(`  ${p.stage}: ${p.total} done\n`);
    },
  };
  let shared: { base: BaseModel; adapters: AdapterSet | undefined } | undefined;
  if (values.model) {
    await initBackend('wasm');
    shared = sharedModelOf(values.model, values.base);
    const model = shared;
    options.predictProba = async (samples) => {
      const probs = predictProba(model.base, model.adapters, toModelSamples(samples, model.base.tokenizer));
      const c = probs.numClasses;
      return samples.map((_, i) => probs.values.slice(i * c, (i + 1) * c));
    };
  }
  try {
    const report = await inspectDataset(resolve(dir), options);
    const files = await writeReport(report, resolve(dir));
    printSummary(report);
    process.stdout.write(`  report: ${files.json}\n          ${files.html}\n`);
    if (values.fix) {
      const fixed = await fixManifest(resolve(dir), report, { labelIssues: values.relabel ? 'relabel' : 'drop' });
      process.stdout.write(`  cleaned manifest: ${fixed.file} (kept ${fixed.kept}, dropped ${fixed.dropped.length}, relabelled ${fixed.relabelled.length}); manifest.jsonl is unchanged\n`);
    }
  } finally {
    shared?.base.dispose();
  }
  return 0;
}

export const clientCommand: Command = {
  name: 'client',
  summary: 'the company agent: run it beside the data, or inspect a dataset',
  usage,
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === 'run') return runAgent(rest);
    if (sub === 'inspect') return inspect(rest);
    throw new UsageError(sub ? `unknown subcommand ${JSON.stringify(sub)}; use run or inspect` : 'name a subcommand: run or inspect');
  },
};
