import { parseArgs } from 'node:util';
import { resolve } from 'node:path';
import { createLogger } from '@fedmm/core';
import { startTelemetry } from '@fedmm/telemetry';
import { UsageError, type Command } from '../command.js';

const usage = `fedmm demo [--out DIR] [--rounds N] [--seed S] [--epochs E] [--companies a,b,c] [--keep-running]
           [--privacy none|record|client] [--noise-multiplier Z] [--clip-norm C] [--sampling-rate Q]
           [--validation-size N]
           [--train-size N] [--test-size N] [--public-size N] [--pretrain-epochs N] [--personal-epochs N]

Runs a whole federation on this machine and writes DIR/report.json and DIR/report.html:
generates the city-safety benchmark (reused when present), pretrains the base (cached), trains
the local-only and centralized baselines, starts the five services in one process on the
embedded adapters with the gateway on mutual TLS, starts one agent process per company, runs
the rounds, then evaluates every published version on every company's test set. The report shows
each company's accuracy, bytes, the epsilon it spent and its contribution.

  --out DIR          output folder (default out/demo)
  --rounds N         federated rounds (default 10)
  --epochs E         local epochs per round (default 2)
  --seed S           benchmark and training seed (default 7)
  --companies LIST   comma-separated subset of gridco, homesafe, metroops, smallcity
  --privacy MODE     none (default); record: DP-SGD in every agent (per-example clip 0.25, noise
                     1.0, batches of ~8 % of a company's data; epsilon ~9 per company); client:
                     updates clipped to 3, noise 0.05 x 3 on the sum at the aggregator
  --noise-multiplier Z, --clip-norm C
                     override the mode's noise multiplier and clip norm
  --sampling-rate Q  record-level: share of a company's samples in one DP-SGD batch (adjusted so
                     no company's rounded batch exceeds it)
  --validation-size N
                     samples per company in the platform's validation set on which contributions
                     are scored by accuracy (default 100; 0: none, contributions by consensus distance)
  --train-size N, --test-size N, --public-size N
                     shrink the benchmark (every company's splits, the public split) for a quick run
  --pretrain-epochs N, --personal-epochs N
                     epochs of base pretraining (default 12) and of the private adapter (default: the local-only budget, rounds x epochs)
  --keep-running     only start the platform, print where it listens and wait for Ctrl-C`;

export const demoCommand: Command = {
  name: 'demo',
  summary: 'run the platform in one process and a federation of company agents against it',
  usage,
  async run(argv) {
    const { values } = parseArgs({
      args: argv,
      options: {
        out: { type: 'string', default: 'out/demo' },
        rounds: { type: 'string' },
        epochs: { type: 'string' },
        seed: { type: 'string' },
        companies: { type: 'string' },
        'train-size': { type: 'string' },
        'test-size': { type: 'string' },
        'public-size': { type: 'string' },
        'pretrain-epochs': { type: 'string' },
        'personal-epochs': { type: 'string' },
        privacy: { type: 'string' },
        'noise-multiplier': { type: 'string' },
        'clip-norm': { type: 'string' },
        'sampling-rate': { type: 'string' },
        'validation-size': { type: 'string' },
        'keep-running': { type: 'boolean', default: false },
      },
    });
    const telemetry = startTelemetry({ serviceName: 'fedmm-demo' });
    try {
      if (values['keep-running']) return await keepRunning(resolve(values.out));
      const { runDemo, demoDefaults } = await import('../demo/run.js');
      const { PRIVACY_PRESETS } = await import('../demo/privacy.js');
      const int = (flag: string, v: string | undefined, fallback: number): number => {
        if (v === undefined) return fallback;
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer, not ${JSON.stringify(v)}`);
        return n;
      };
      let companies = demoDefaults.companies;
      if (values.companies !== undefined) {
        const wanted = values.companies.split(',').map((s) => s.trim()).filter(Boolean);
        const unknown = wanted.filter((w) => !companies.some((c) => c.name === w));
        if (unknown.length > 0 || wanted.length < 2) throw new UsageError(`--companies takes at least two of ${companies.map((c) => c.name).join(', ')}${unknown.length ? `; unknown: ${unknown.join(', ')}` : ''}`);
        companies = companies.filter((c) => wanted.includes(c.name));
      }
      const trainSize = values['train-size'] === undefined ? undefined : int('train-size', values['train-size'], 1);
      const testSize = values['test-size'] === undefined ? undefined : int('test-size', values['test-size'], 1);
      if (trainSize !== undefined || testSize !== undefined) {
        // Faults are sized for the full split; a shrunken one keeps the label noise share only.
        companies = companies.map((c) => ({ ...c, trainSize: trainSize ?? c.trainSize, testSize: testSize ?? c.testSize, ...(c.faults ? { faults: { labelNoise: c.faults.labelNoise ?? 0 } } : {}) }));
      }
      const publicSize = values['public-size'] === undefined ? undefined : int('public-size', values['public-size'], 1);
      const mode = values.privacy ?? demoDefaults.privacy.mode;
      if (mode !== 'none' && mode !== 'record' && mode !== 'client') throw new UsageError(`--privacy takes none, record or client, not ${JSON.stringify(mode)}`);
      const real = (flag: string, v: string | undefined, fallback: number): number => {
        if (v === undefined) return fallback;
        const n = Number(v);
        if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${flag} must be a positive number, not ${JSON.stringify(v)}`);
        return n;
      };
      const preset = PRIVACY_PRESETS[mode];
      if (mode === 'none' && (values['noise-multiplier'] !== undefined || values['clip-norm'] !== undefined)) throw new UsageError('--noise-multiplier and --clip-norm need --privacy record or client');
      if (mode !== 'record' && values['sampling-rate'] !== undefined) throw new UsageError('--sampling-rate needs --privacy record');
      const samplingRate = real('sampling-rate', values['sampling-rate'], preset.samplingRate);
      if (samplingRate > 1) throw new UsageError(`--sampling-rate must be at most 1, not ${samplingRate}`);
      const privacy = { ...preset, noiseMultiplier: real('noise-multiplier', values['noise-multiplier'], preset.noiseMultiplier), clipNorm: real('clip-norm', values['clip-norm'], preset.clipNorm), samplingRate };
      let validationPerCompany = demoDefaults.validationPerCompany;
      if (values['validation-size'] !== undefined) {
        validationPerCompany = Number(values['validation-size']);
        if (!Number.isInteger(validationPerCompany) || validationPerCompany < 0) throw new UsageError(`--validation-size must be a non-negative integer, not ${JSON.stringify(values['validation-size'])}`);
      }
      const started = Date.now();
      const { report, files } = await runDemo({
        ...demoDefaults,
        out: values.out,
        rounds: int('rounds', values.rounds, demoDefaults.rounds),
        localEpochs: int('epochs', values.epochs, demoDefaults.localEpochs),
        seed: values.seed === undefined ? demoDefaults.seed : int('seed', values.seed, demoDefaults.seed),
        companies,
        ...(publicSize !== undefined ? { publicSize } : {}),
        pretrainEpochs: int('pretrain-epochs', values['pretrain-epochs'], demoDefaults.pretrainEpochs),
        ...(values['personal-epochs'] !== undefined ? { personalEpochs: int('personal-epochs', values['personal-epochs'], 1) } : {}),
        privacy,
        validationPerCompany,
        print: (line) => process.stdout.write(`${line}\n`),
      });
      const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;
      const s = report.summary;
      const w = Math.max(...report.companies.map((c) => c.name.length));
      process.stdout.write(`\n${'company'.padEnd(w)}  local-only  federated  personalized  centralized  gain        sent        received    training\n`);
      for (const c of report.companies) {
        process.stdout.write(`${c.name.padEnd(w)}  ${pct(c.localOnly.accuracy).padStart(10)}  ${pct(c.federated.accuracy).padStart(9)}  ${pct(c.personalized.accuracy).padStart(12)}  ${pct(c.centralized.accuracy).padStart(11)}  ${`${c.gain >= 0 ? '+' : ''}${(100 * c.gain).toFixed(1)} pts`.padEnd(10)}  ${`${(c.cost.bytesSent / 2 ** 20).toFixed(2)} MiB`.padEnd(10)}  ${`${(c.cost.bytesReceived / 2 ** 20).toFixed(2)} MiB`.padEnd(10)}  ${c.cost.trainingSeconds.toFixed(1)} s\n`);
      }
      process.stdout.write(`${'mean'.padEnd(w)}  ${pct(s.meanLocalOnly).padStart(10)}  ${pct(s.meanFederated).padStart(9)}  ${pct(s.meanPersonalized).padStart(12)}  ${pct(s.meanCentralized).padStart(11)}\n\n`);
      const eps = report.companies.filter((c) => c.privacy).map((c) => `${c.name} ${c.privacy!.epsilon.toFixed(2)}`);
      if (eps.length > 0) process.stdout.write(`epsilon spent (delta ${report.privacy?.delta ?? ''}): ${eps.join(', ')}\n`);
      const shares = report.companies.filter((c) => c.contribution).map((c) => `${c.name} ${(100 * c.contribution!.rewardShare).toFixed(1)} %`);
      if (shares.length > 0) process.stdout.write(`reward shares (${report.contributionMethod ?? ''} Shapley, ${report.contributionUtility || 'utility'}): ${shares.join(', ')}\n`);
      process.stdout.write(`${s.everyCompanyGains ? 'every company gains from joining' : 'NOT every company gains from joining'}; the shared model is ${(100 * s.federatedGapToCentralized).toFixed(1)} points from centralized\n`);
      process.stdout.write(`finished in ${((Date.now() - started) / 1000).toFixed(0)} s\nreport: ${files.json}\n        ${files.html}\n`);
      return 0;
    } finally {
      await telemetry.shutdown();
    }
  },
};

/** The platform alone, for operators who drive it with the other commands. */
async function keepRunning(out: string): Promise<number> {
  const { startPlatform, platformHealth } = await import('../platform.js');
  const log = createLogger({ component: 'demo' }, 'warn');
  const { PkiFiles, initPkiDir } = await import('@fedmm/pki');
  const pki = `${out}/pki`;
  await initPkiDir(pki);
  const platform = await startPlatform({
    dataDir: `${out}/platform`,
    env: { FEDMM_TLS_CERT: `${pki}/${PkiFiles.serverCert}`, FEDMM_TLS_KEY: `${pki}/${PkiFiles.serverKey}`, FEDMM_TLS_CA: `${pki}/${PkiFiles.caCert}` },
    log,
  });
  const health = await platformHealth(platform);
  process.stdout.write('fedmm platform (embedded adapters, one process):\n');
  for (const s of platform.services) process.stdout.write(`  ${s.name.padEnd(12)} ${s.address.padEnd(18)} ${health[s.name] ?? 'mTLS'}\n`);
  const unhealthy = Object.entries(health).filter(([, v]) => v !== 'SERVING');
  if (unhealthy.length > 0) {
    process.stderr.write(`unhealthy services: ${unhealthy.map(([k, v]) => `${k}=${v}`).join(', ')}\n`);
    await platform.stop();
    return 1;
  }
  process.stdout.write(`gateway CA and certificates in ${pki} (fedmm pki issue-client --dir ${pki} --tenant NAME adds a company)\nrunning; press Ctrl-C to stop\n`);
  await new Promise<void>((r) => process.once('SIGINT', () => r()));
  await platform.stop();
  return 0;
}
