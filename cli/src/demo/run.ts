import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FedmmError, createLogger, type Logger } from '@fedmm/core';
import { DEFAULT_COMPANIES, synthesize, type CompanySpec } from '@fedmm/data';
import { evaluate, initBackend, type AdapterSet } from '@fedmm/model';
import { PkiFiles, initPkiDir } from '@fedmm/pki';
import { aggregator as apb, privacy as ppb, task as tpb, valuation as vpb } from '@fedmm/proto';
import { createRpcClient } from '@fedmm/service-kit';
import { startPlatform, type Platform } from '../platform.js';
import { startAgent, type AgentProcess } from './agents.js';
import { initialAdapters, loadCompany, pct, personalize, runBaselines, type BaselineResult, type CompanyData, type TrainBudget } from './baselines.js';
import { pretrainBase, registerBase } from './pretrain.js';
import { PRIVACY_PRESETS, planRecordSampling, type DemoPrivacy } from './privacy.js';
import { ensureValidationSet } from './validation.js';
import { RegistryClient } from './registry-client.js';
import { mean, summarize, writeDemoReport, type CompanyReport, type DemoReport, type RoundReport } from './report.js';

/** Settings of one demo run; `demoDefaults` fills what is left out. */
export interface DemoOptions {
  readonly out: string;
  readonly seed: number;
  readonly rounds: number;
  readonly localEpochs: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly rank: number;
  readonly alpha: number;
  readonly pretrainEpochs: number;
  /**
   * Epochs of the private (Ditto) adapter each company trains on top of the final shared one;
   * default the local-only budget (rounds x local epochs), so both spend the same local training.
   */
  readonly personalEpochs?: number;
  readonly personalLambda: number;
  readonly strategy: string;
  readonly roundDeadlineSeconds: number;
  /** The benchmark's companies (default: the four of the default preset). */
  readonly companies: readonly CompanySpec[];
  /** Size of the public pretraining split. */
  readonly publicSize?: number;
  /** argv that runs the fedmm CLI (the agents are `<command> client run ...`). */
  readonly command: readonly string[];
  /**
   * Differential privacy of the task (`PRIVACY_PRESETS`). Off by default: with DP on, the shared
   * model falls 7-8 points below centralized at every setting measured (docs/DEMO.md), outside the
   * demo's criterion of 5; `--privacy record` shows the spend.
   */
  readonly privacy: DemoPrivacy;
  /**
   * Samples per company in the platform's validation set, on which the valuation service scores
   * each round by accuracy; 0 leaves the task without one (consensus-distance utility).
   */
  readonly validationPerCompany: number;
  /** Hard limit on the federated part, after which the demo stops with an error. */
  readonly federationTimeoutSeconds: number;
  readonly print: (line: string) => void;
  readonly log?: Logger;
}

/** Defaults of `make demo`: 4 companies, 10 rounds of 2 local epochs (measured in docs/DEMO.md). */
export const demoDefaults: Omit<DemoOptions, 'print'> = Object.freeze({
  out: 'out/demo',
  seed: 7,
  rounds: 10,
  localEpochs: 2,
  batchSize: 32,
  lr: 3e-3,
  rank: 8,
  alpha: 16,
  pretrainEpochs: 12,
  personalLambda: 0.1,
  strategy: 'fedavg',
  roundDeadlineSeconds: 240,
  companies: DEFAULT_COMPANIES,
  command: [process.execPath, fileURLToPath(new URL('../../../bin/fedmm.js', import.meta.url))],
  privacy: PRIVACY_PRESETS.none,
  validationPerCompany: 100,
  federationTimeoutSeconds: 1800,
});

const MODEL_ID = 'city-safety';

/**
 * The consortium's terms: rewards proportional to positive contributions, and one access tier for
 * everyone. Every round here needs every company, and a company whose tier delays its access to
 * the latest version could not train on a round's input, so the demo keeps access equal.
 */
const DEMO_TERMS = {
  dataUse: 'city-safety incident classification; updates only, no raw data leaves a company',
  rewardRule: { kind: 'proportional-positive', floor: 0 },
  accessTiers: { tiers: [{ name: 'member', minShare: 0, versionDelay: 0 }] },
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Generates the benchmark into `dir`, or reuses it when it was generated with the same seed and companies. */
async function ensureData(dir: string, o: DemoOptions): Promise<{ reused: boolean; seconds: number }> {
  const specFile = join(dir, '.demo-spec.json');
  const spec = JSON.stringify({ seed: o.seed, companies: o.companies, publicSize: o.publicSize ?? null });
  const digest = createHash('sha256').update(spec).digest('hex');
  if (existsSync(specFile) && existsSync(join(dir, 'benchmark.json')) && readFileSync(specFile, 'utf8').trim() === digest) return { reused: true, seconds: 0 };
  const t0 = performance.now();
  rmSync(dir, { recursive: true, force: true });
  const { PUBLIC_SPEC } = await import('@fedmm/data');
  await synthesize({ outDir: dir, seed: o.seed, companies: o.companies, ...(o.publicSize ? { publicSpec: { ...PUBLIC_SPEC, trainSize: o.publicSize } } : {}) });
  writeFileSync(specFile, `${digest}\n`);
  return { reused: false, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The baselines, or the ones cached for the same data, base and budget: they are deterministic for
 * a seed and do not depend on the federation's settings (privacy, validation set), so a rerun that
 * changes only those skips two minutes of training.
 */
function cachedBaselines(cacheDir: string, dataDir: string, pre: { cacheFile?: string }, budget: TrainBudget, names: readonly string[], compute: () => BaselineResult): BaselineResult & { cached?: string } {
  if (!pre.cacheFile) return compute();
  const specFile = join(dataDir, '.demo-spec.json');
  const key = createHash('sha256').update(JSON.stringify({ base: basename(pre.cacheFile), data: existsSync(specFile) ? readFileSync(specFile, 'utf8').trim() : null, budget, names })).digest('hex').slice(0, 16);
  const file = join(cacheDir, `baselines-${key}.json`);
  if (existsSync(file)) {
    const j = JSON.parse(readFileSync(file, 'utf8')) as { localOnly: [string, { accuracy: number; seconds: number }][]; centralized: [string, number][]; centralizedSeconds: number; baseOnly: [string, number][] };
    return { localOnly: new Map(j.localOnly), centralized: new Map(j.centralized), centralizedSeconds: j.centralizedSeconds, baseOnly: new Map(j.baseOnly), cached: file };
  }
  const r = compute();
  mkdirSync(cacheDir, { recursive: true });
  writeFileSync(file, `${JSON.stringify({ localOnly: [...r.localOnly], centralized: [...r.centralized], centralizedSeconds: r.centralizedSeconds, baseOnly: [...r.baseOnly] })}\n`);
  return r;
}

/** Creates the task once the coordinator holds its lease (it takes it a moment after start). */
async function createTask(client: ReturnType<typeof aggregatorClient>, task: tpb.Task): Promise<tpb.Task> {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      return (await client.createTask({ task }, { deadlineMs: 15_000 })).task!;
    } catch (e) {
      if (Date.now() > until || !/leader|lease|UNAVAILABLE/i.test((e as Error).message)) throw e;
      await sleep(250);
    }
  }
}

function aggregatorClient(addr: string) {
  return createRpcClient(apb.AggregatorServiceService, addr);
}

const stateName = (s: tpb.RoundState): string => (tpb.RoundState[s] ?? 'unknown').replace(/^ROUND_STATE_/, '').toLowerCase();
const ms = (t: { seconds: number; nanos: number } | Date | undefined): number => (!t ? 0 : t instanceof Date ? t.getTime() : t.seconds * 1000 + t.nanos / 1e6);

/**
 * Runs the whole federation on this machine and writes report.json and report.html: benchmark data,
 * pretrained base, in-process baselines, the five services in one process (gateway on mTLS), one
 * agent process per company, the rounds, then every published version evaluated on every company's
 * test split, personalization, privacy spend and contributions.
 */
export async function runDemo(options: DemoOptions): Promise<{ report: DemoReport; files: { json: string; html: string } }> {
  const o = options;
  const out = resolve(o.out);
  const print = o.print;
  const log = o.log ?? createLogger({ component: 'demo' }, 'warn');
  const timings: Record<string, number> = {};
  const started = performance.now();
  const lap = (name: string, t0: number): void => {
    timings[name] = (performance.now() - t0) / 1000;
  };
  const names = o.companies.map((c) => c.name);
  if (names.length < 2) throw new FedmmError('INVALID_ARGUMENT', 'the demo needs at least two companies');

  // 1. Data.
  let t0 = performance.now();
  const dataDir = join(out, 'data');
  const data = await ensureData(dataDir, o);
  lap('data', t0);
  print(data.reused ? `data       reusing the benchmark in ${dataDir}` : `data       generated the benchmark (seed ${o.seed}) in ${data.seconds.toFixed(1)} s: ${names.join(', ')} + public split`);

  // 2. Base model.
  const backend = await initBackend('wasm');
  t0 = performance.now();
  const pre = await pretrainBase({
    publicDir: join(dataDir, 'public'),
    epochs: o.pretrainEpochs,
    seed: o.seed,
    cacheDir: join(out, 'cache'),
    onEpoch: (e, n, loss) => {
      if (e === n || e % 4 === 0) print(`pretrain   epoch ${e}/${n}  loss ${loss.toFixed(4)}`);
    },
  });
  lap('pretrain', t0);
  print(pre.cached ? `pretrain   reusing the cached base (${pre.cacheFile})` : `pretrain   base trained in ${pre.seconds.toFixed(1)} s, public-split accuracy ${pct(pre.publicAccuracy)}`);
  const budget: TrainBudget = { epochs: o.rounds * o.localEpochs, batchSize: o.batchSize, lr: o.lr, rank: o.rank, alpha: o.alpha, seed: o.seed };
  const initial = initialAdapters(pre.base, budget);
  const companies: CompanyData[] = [];
  for (const n of names) companies.push(await loadCompany(dataDir, n, pre.base, pre.classes, pre.maxTokens));
  const taskId = 'city-safety-demo';
  const validationRoot = join(out, 'validation');
  if (o.validationPerCompany > 0) {
    const v = await ensureValidationSet(join(validationRoot, taskId), { seed: o.seed, companies: o.companies, perCompany: o.validationPerCompany, classes: pre.classes });
    print(`validation ${v.reused ? 'reusing' : 'generated'} the platform's validation set (${v.samples} samples, ${o.validationPerCompany} per company): the valuation service scores each round by accuracy on it`);
  } else {
    rmSync(validationRoot, { recursive: true, force: true });
  }
  const dp = taskPrivacy(o.privacy, companies.map((c) => c.train.length), o.localEpochs);
  print(`privacy    ${dp.line}`);

  // 3. Baselines, before the platform starts: training in this process would stall its gRPC servers.
  t0 = performance.now();
  print(`baselines  local-only and centralized adapters, ${budget.epochs} epochs each (the federation's ${o.rounds} rounds x ${o.localEpochs} local epochs)`);
  const baselines = cachedBaselines(join(out, 'cache'), dataDir, pre, budget, names, () => runBaselines(pre.base, initial, companies, budget, (l) => print(`baselines  ${l}`)));
  if (baselines.cached) print(`baselines  reusing the cached baselines (${baselines.cached}): ${names.map((n) => `${n} local-only ${pct(baselines.localOnly.get(n)!.accuracy)}`).join(', ')}`);
  lap('baselines', t0);

  // 4. PKI and platform.
  const pkiDir = join(out, 'pki');
  await initPkiDir(pkiDir, { tenants: names });
  const platformDir = join(out, 'platform');
  // A fresh platform knows no earlier rounds, so the agents' round memory must start fresh too.
  for (const d of [platformDir, join(out, 'agents'), join(out, 'logs')]) rmSync(d, { recursive: true, force: true });
  const platform: Platform = await startPlatform({
    dataDir: platformDir,
    ports: { gateway: 0, registry: 0, aggregator: 0, privacy: 0, valuation: 0 },
    env: {
      FEDMM_TLS_CERT: join(pkiDir, PkiFiles.serverCert), FEDMM_TLS_KEY: join(pkiDir, PkiFiles.serverKey), FEDMM_TLS_CA: join(pkiDir, PkiFiles.caCert), FEDMM_LOG_LEVEL: 'warn',
      FEDMM_VALUATION_DATA_DIR: validationRoot,
    },
    log,
  });
  const agents: AgentProcess[] = [];
  const registry = new RegistryClient(platform.addressOf('registry'));
  const agg = aggregatorClient(platform.addressOf('aggregator'));
  // Ctrl-C would end this process and leave the agent processes running against a dead gateway.
  const onSignal = (signal: NodeJS.Signals): void => {
    print(`demo       ${signal}: stopping ${agents.length} agents and the platform`);
    void Promise.all(agents.map((a) => a.stop(3000).catch(() => undefined)))
      .then(() => platform.stop())
      .catch(() => undefined)
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    print(`platform   ${platform.services.map((s) => `${s.name} ${s.address}`).join(', ')} (gateway on mutual TLS)`);
    const reg = await registerBase(registry, MODEL_ID, pre, { rank: o.rank, alpha: o.alpha, seed: o.seed });
    print(`registry   model ${MODEL_ID}: base ${reg.baseVersionId} (${reg.baseBytes} bytes), initial adapters ${reg.adapterVersionId} (${reg.adapterBytes} bytes)`);
    const task = await createTask(agg, tpb.Task.fromPartial({
      taskId,
      modelId: MODEL_ID,
      baseVersionId: reg.adapterVersionId,
      members: names,
      rounds: o.rounds,
      strategy: { name: o.strategy, params: {}, clipNorm: 0 },
      privacy: dp.config,
      selection: { fraction: 1, minClients: names.length, maxClients: 0 },
      roundDeadlineSeconds: o.roundDeadlineSeconds,
      clientConfig: { local_epochs: o.localEpochs, batch_size: o.batchSize, learning_rate: o.lr, ...dp.clientConfig },
      termsJson: JSON.stringify(DEMO_TERMS),
    }));
    print(`task       ${task.taskId}: ${task.rounds} rounds of ${o.strategy}, privacy ${o.privacy.mode}, members ${task.members.join(', ')}`);

    // 5. Agents, one process each, then round 1.
    t0 = performance.now();
    const width = Math.max(...names.map((n) => n.length));
    for (const c of companies) {
      agents.push(startAgent({
        tenant: c.name,
        gateway: platform.addressOf('gateway'),
        pkiDir,
        trainDir: c.trainDir,
        testDir: c.testDir,
        taskId,
        workDir: join(out, 'agents', c.name),
        seed: o.seed,
        command: o.command,
        logDir: join(out, 'logs'),
        env: { FEDMM_LOG_LEVEL: 'info' },
        onLine: (tenant, line) => print(`  [${tenant.padEnd(width)}] ${line}`),
      }));
    }
    print(`agents     started ${agents.length} agent processes (logs in ${join(out, 'logs')})`);
    await startWhenAccepted(agg, taskId, agents);
    const rounds = await followRounds(agg, taskId, o, agents, print);
    lap('federation', t0);
    if (rounds.length === 0) throw new FedmmError('FAILED_PRECONDITION', `no round of ${taskId} was published; read the agent logs in ${join(out, 'logs')}`);
    await Promise.all(agents.map((a) => a.stop()));
    print(`agents     stopped`);

    // 6. Evaluation of every published version, personalization, privacy and contributions.
    t0 = performance.now();
    const versions: { round: tpb.Round; adapters: AdapterSet; accuracy: Record<string, number> }[] = [];
    for (const r of rounds) {
      const adapters = await registry.downloadAdapters(r.outputVersionId, { rank: o.rank, alpha: o.alpha });
      const accuracy = Object.fromEntries(companies.map((c) => [c.name, evaluate(pre.base, adapters, c.test).accuracy]));
      versions.push({ round: r, adapters, accuracy });
      print(`evaluate   round ${String(r.number).padStart(2)} ${names.map((n) => `${n} ${pct(accuracy[n]!)}`).join('  ')}`);
    }
    const final = versions.at(-1)!;
    const personalEpochs = o.personalEpochs ?? o.rounds * o.localEpochs;
    const personalized = new Map<string, { accuracy: number; seconds: number }>();
    for (const c of companies) {
      const p = personalize(pre.base, final.adapters, c, { epochs: personalEpochs, batchSize: o.batchSize, lr: o.lr, lambda: o.personalLambda, seed: o.seed });
      personalized.set(c.name, p);
      print(`personal   ${c.name.padEnd(width)} ${pct(p.accuracy)} (shared ${pct(final.accuracy[c.name]!)}, ${personalEpochs} epochs of a private adapter, ${p.seconds.toFixed(1)} s)`);
    }
    const spend = await readPrivacy(platform, taskId);
    const contributions = await readContributions(platform, taskId, rounds.length);
    lap('evaluation', t0);

    const companyReports: CompanyReport[] = companies.map((c) => {
      const a = agents.find((x) => x.tenant === c.name)!;
      const fed = final.accuracy[c.name]!;
      const pers = personalized.get(c.name)!;
      const local = baselines.localOnly.get(c.name)!;
      const contribution = contributions?.byTenant.get(c.name);
      const eps = spend?.byTenant.get(c.name);
      return {
        name: c.name,
        trainSamples: c.train.length,
        testSamples: c.test.length,
        modalities: (['image', 'text', 'sensor'] as const).filter((m) => c.train.some((s) => (m === 'text' ? s.tokens : s[m]) !== undefined)),
        baseOnly: { accuracy: baselines.baseOnly.get(c.name)! },
        localOnly: { accuracy: local.accuracy, trainingSeconds: local.seconds },
        federated: { accuracy: fed },
        personalized: { accuracy: pers.accuracy, trainingSeconds: pers.seconds },
        centralized: { accuracy: baselines.centralized.get(c.name)! },
        gain: Math.max(fed, pers.accuracy) - local.accuracy,
        cost: { bytesSent: a.figures.bytesSent, bytesReceived: a.figures.bytesReceived, trainingSeconds: a.figures.trainingSeconds, roundsJoined: rounds.filter((r) => r.received.includes(c.name)).length },
        ...(eps !== undefined ? { privacy: { ...eps, delta: o.privacy.delta } } : {}),
        ...(contribution ? { contribution } : {}),
      };
    });
    const upload = new Map(companies.map((c) => [c.name, agents.find((x) => x.tenant === c.name)!.figures]));
    const roundReports: RoundReport[] = versions.map((v) => {
      const received = v.round.received;
      const perUpload = (n: string): number => {
        const f = upload.get(n)!;
        return f.uploads > 0 ? f.bytesSent / f.uploads : 0;
      };
      return {
        number: v.round.number,
        attempt: v.round.attempt,
        versionId: v.round.outputVersionId,
        seconds: Math.max(0, (ms(v.round.closeTime) - ms(v.round.openTime)) / 1000),
        received: [...received],
        dropped: [...v.round.dropped],
        accuracy: v.accuracy,
        meanAccuracy: mean(Object.values(v.accuracy)),
        bytesUp: received.reduce((s, n) => s + perUpload(n), 0),
        bytesDown: v.round.selected.length * reg.adapterBytes,
        ...(contributions?.rounds.get(v.round.number) ? { contributions: contributions.rounds.get(v.round.number)! } : {}),
        ...(spend?.rounds.get(v.round.number) ? { epsilon: spend.rounds.get(v.round.number)! } : {}),
      };
    });
    timings['total'] = (performance.now() - started) / 1000;
    const report: DemoReport = {
      format: 'fedmm.demo-report',
      version: 1,
      generatedAt: new Date().toISOString(),
      settings: {
        seed: o.seed, rounds: o.rounds, localEpochs: o.localEpochs, batchSize: o.batchSize, lr: o.lr, rank: o.rank, alpha: o.alpha, strategy: o.strategy,
        personalEpochs, pretrainEpochs: o.pretrainEpochs, companies: names, tls: 'mutual', backend: `${backend.backend}${backend.simd ? ' (SIMD)' : ''}`,
      },
      model: { modelId: MODEL_ID, baseVersionId: reg.baseVersionId, initialVersionId: reg.adapterVersionId, finalVersionId: final.round.outputVersionId, publicAccuracy: pre.publicAccuracy, baseBytes: reg.baseBytes, adapterBytes: reg.adapterBytes },
      taskId,
      companies: companyReports,
      rounds: roundReports,
      bytes: { up: companyReports.reduce((s, c) => s + c.cost.bytesSent, 0), down: companyReports.reduce((s, c) => s + c.cost.bytesReceived, 0) },
      summary: summarize(companyReports),
      privacy: dp.report,
      ...(contributions ? { contributionMethod: contributions.method, contributionUtility: contributions.utility } : {}),
      timings,
    };
    const files = writeDemoReport(out, report);
    return { report, files };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await Promise.all(agents.map((a) => a.stop().catch(() => undefined)));
    agg.close();
    registry.close();
    await platform.stop();
    pre.base.dispose();
  }
}

/** Starts round 1 once every member's agent has signed the terms (the coordinator selects only those). */
async function startWhenAccepted(agg: ReturnType<typeof aggregatorClient>, taskId: string, agents: AgentProcess[]): Promise<void> {
  const until = Date.now() + 120_000;
  for (;;) {
    try {
      await agg.startRound({ taskId }, { deadlineMs: 15_000 });
      return;
    } catch (e) {
      if (!/eligible|accept/i.test((e as Error).message) || Date.now() > until) throw e;
      const dead = agents.find((a) => a.child.exitCode !== null);
      if (dead) throw new FedmmError('FAILED_PRECONDITION', `the agent of ${dead.tenant} exited (${dead.child.exitCode}) before accepting the terms; read ${dead.logFile}`);
      await sleep(500);
    }
  }
}

/** Polls the task's rounds and prints each change until the task completes; returns the published rounds in order. */
async function followRounds(agg: ReturnType<typeof aggregatorClient>, taskId: string, o: DemoOptions, agents: AgentProcess[], print: (l: string) => void): Promise<tpb.Round[]> {
  const seen = new Map<string, string>();
  const until = Date.now() + o.federationTimeoutSeconds * 1000;
  for (;;) {
    const [{ task }, { rounds }] = await Promise.all([agg.getTask({ taskId }, { deadlineMs: 10_000 }), agg.listRounds({ taskId }, { deadlineMs: 10_000 })]);
    for (const r of rounds) {
      const key = `${r.number}/${r.attempt}`;
      const state = `${stateName(r.state)}:${r.received.join(',')}`;
      if (seen.get(key) === state) continue;
      const before = seen.get(key);
      seen.set(key, state);
      const name = stateName(r.state);
      if (!before) print(`round ${String(r.number).padStart(2)}   open (attempt ${r.attempt}), selected ${r.selected.join(', ')}`);
      const got = before?.split(':')[1]?.split(',').filter(Boolean) ?? [];
      for (const t of r.received) if (!got.includes(t)) print(`round ${String(r.number).padStart(2)}   update from ${t} (${r.received.length}/${r.selected.length}) at ${((Date.now() - ms(r.openTime)) / 1000).toFixed(1)} s`);
      if (name === 'published') print(`round ${String(r.number).padStart(2)}   published ${r.outputVersionId} in ${((ms(r.closeTime) - ms(r.openTime)) / 1000).toFixed(1)} s${r.dropped.length ? ` (dropped ${r.dropped.join(', ')})` : ''}`);
      if (name === 'failed') print(`round ${String(r.number).padStart(2)}   failed: ${r.failureReason}`);
    }
    if (task?.state === 'completed' || task?.state === 'failed') {
      const published = rounds.filter((r) => r.state === tpb.RoundState.ROUND_STATE_PUBLISHED).sort((a, b) => a.number - b.number);
      if (task.state === 'failed') print(`task       failed after ${published.length} published rounds`);
      return published;
    }
    const dead = agents.filter((a) => a.child.exitCode !== null);
    if (dead.length === agents.length) {
      throw new FedmmError('FAILED_PRECONDITION', `every agent process exited (${dead.map((a) => `${a.tenant}: ${a.child.exitCode}`).join(', ')}); read ${dead[0]!.logFile}`);
    }
    if (Date.now() > until) throw new FedmmError('DEADLINE_EXCEEDED', `the federation did not finish within ${o.federationTimeoutSeconds} s; read the agent logs`);
    await sleep(500);
  }
}

/** The task's privacy config, the client_config keys record-level DP needs, and what the report says about it. */
function taskPrivacy(p: DemoPrivacy, trainSizes: readonly number[], localEpochs: number): {
  config: tpb.PrivacyConfig;
  clientConfig: Record<string, number>;
  report: NonNullable<DemoReport['privacy']>;
  line: string;
} {
  const accountant = 'rdp';
  if (p.mode === 'none') {
    return { config: tpb.PrivacyConfig.fromPartial({ mode: 'none' }), clientConfig: {}, report: { mode: 'none', accountant, delta: p.delta }, line: 'none: updates leave the companies without differential privacy' };
  }
  const config = tpb.PrivacyConfig.fromPartial({ mode: p.mode, noiseMultiplier: p.noiseMultiplier, clipNorm: p.clipNorm, delta: p.delta, accountant });
  if (p.mode === 'client') {
    return {
      config,
      clientConfig: {},
      report: { mode: 'client', accountant, delta: p.delta, noiseMultiplier: p.noiseMultiplier, clipNorm: p.clipNorm },
      line: `client-level: each update clipped to ${p.clipNorm}, Gaussian noise of ${p.noiseMultiplier} x ${p.clipNorm} on the sum at the aggregator`,
    };
  }
  const plan = planRecordSampling(p.samplingRate, trainSizes, localEpochs);
  return {
    config,
    clientConfig: { sampling_rate: plan.samplingRate, local_steps: plan.localSteps },
    report: { mode: 'record', accountant, delta: p.delta, noiseMultiplier: p.noiseMultiplier, clipNorm: p.clipNorm, samplingRate: plan.samplingRate, localSteps: plan.localSteps },
    line: `record-level DP-SGD in every agent: per-example clip ${p.clipNorm}, noise multiplier ${p.noiseMultiplier}, sampling rate ${plan.samplingRate.toFixed(4)}, at most ${plan.localSteps} steps per round (${accountant} accountant, delta ${p.delta})`,
  };
}

/** What the privacy service's ledger says a tenant spent in the task. */
type Spend = { epsilon: number; samplingRate: number; noiseMultiplier: number; steps: number };

/** Each tenant's committed epsilon and events in the task, and its cumulative epsilon after each round; undefined when the privacy service does not answer or has none. */
async function readPrivacy(platform: Platform, taskId: string): Promise<{ byTenant: Map<string, Spend>; rounds: Map<number, Record<string, number>> } | undefined> {
  const c = createRpcClient(ppb.PrivacyServiceService, platform.addressOf('privacy'));
  try {
    const res = await c.getLedger({ taskId, tenant: '' }, { deadlineMs: 10_000 });
    if (Object.keys(res.epsilonByTenant).length === 0) return undefined;
    const byTenant = new Map<string, Spend>();
    for (const [tenant, epsilon] of Object.entries(res.epsilonByTenant)) byTenant.set(tenant, { epsilon, samplingRate: 0, noiseMultiplier: 0, steps: 0 });
    const rounds = new Map<number, Record<string, number>>();
    for (const e of res.entries) {
      if (e.state !== 'committed') continue;
      rounds.set(e.round, { ...rounds.get(e.round), [e.tenant]: e.cumulativeEpsilon });
      const s = byTenant.get(e.tenant);
      if (!s) continue;
      for (const ev of e.events) {
        s.steps += ev.steps;
        s.samplingRate = Math.max(s.samplingRate, ev.samplingRate);
        s.noiseMultiplier = s.noiseMultiplier === 0 ? ev.noiseMultiplier : Math.min(s.noiseMultiplier, ev.noiseMultiplier);
      }
    }
    return { byTenant, rounds };
  } catch {
    return undefined;
  } finally {
    c.close();
  }
}

/** Contributions per tenant and per round, or undefined when valuation does not answer or has none. */
async function readContributions(platform: Platform, taskId: string, published: number): Promise<{ byTenant: Map<string, { value: number; rewardShare: number; tier: string }>; rounds: Map<number, Record<string, number>>; method: string; utility: string } | undefined> {
  const c = createRpcClient(vpb.ValuationServiceService, platform.addressOf('valuation'));
  try {
    // The coordinator asks for each round's scores once the round is published and does not wait
    // for them, so the last rounds may still be scored.
    const until = Date.now() + 120_000;
    let res = await c.getContributions({ taskId }, { deadlineMs: 10_000 });
    while (new Set(res.rounds.map((r) => r.round)).size < published && Date.now() < until) {
      await sleep(1000);
      res = await c.getContributions({ taskId }, { deadlineMs: 10_000 });
    }
    if (res.contributions.length === 0) return undefined;
    return {
      byTenant: new Map(res.contributions.map((x) => [x.tenant, { value: x.cumulativeValue, rewardShare: x.rewardShare, tier: x.tier }])),
      rounds: new Map(res.rounds.map((r) => [r.round, { ...r.values }])),
      method: res.rounds[0]?.method ?? 'valuation service',
      utility: res.rounds[0]?.utility ?? '',
    };
  } catch {
    return undefined;
  } finally {
    c.close();
  }
}
