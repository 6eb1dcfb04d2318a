import { join } from 'node:path';
import { loadSamples } from '@fedmm/data';
import { evaluate, initAdapters, train, trainPersonal, type AdapterSet, type BaseModel, type Sample } from '@fedmm/model';
import { toModelSamples } from './model-card.js';

/** One company's model-ready train and test splits. */
export interface CompanyData {
  readonly name: string;
  readonly train: Sample[];
  readonly test: Sample[];
  readonly trainDir: string;
  readonly testDir: string;
}

/** Loads `<dataDir>/<company>/{train,test}` with the base's tokenizer and the task's classes. */
export async function loadCompany(dataDir: string, name: string, base: BaseModel, classes: readonly string[], maxTokens: number): Promise<CompanyData> {
  const trainDir = join(dataDir, name, 'train');
  const testDir = join(dataDir, name, 'test');
  const [tr, te] = await Promise.all([loadSamples(trainDir, { classes }), loadSamples(testDir, { classes })]);
  return { name, trainDir, testDir, train: toModelSamples(tr.samples, base.tokenizer, maxTokens), test: toModelSamples(te.samples, base.tokenizer, maxTokens) };
}

/** Local training settings shared by the baselines and the federation, so budgets match. */
export interface TrainBudget {
  readonly epochs: number;
  readonly batchSize: number;
  readonly lr: number;
  readonly rank: number;
  readonly alpha: number;
  readonly seed: number;
}

/** What the in-process baselines measured, per company. */
export interface BaselineResult {
  readonly localOnly: Map<string, { accuracy: number; seconds: number }>;
  readonly centralized: Map<string, number>;
  readonly centralizedSeconds: number;
  readonly baseOnly: Map<string, number>;
}

/**
 * Local-only: each company trains adapters on its own train split for the federation's whole epoch
 * budget (rounds x local epochs), never seeing another company's data. Centralized: one set of
 * adapters trained on the pooled train splits for the same epochs (the upper bound a federation
 * approaches). Both start from the same initial adapters as the federation and are evaluated on each
 * company's own test split.
 */
export function runBaselines(base: BaseModel, initial: AdapterSet, companies: readonly CompanyData[], budget: TrainBudget, log: (line: string) => void): BaselineResult {
  const localOnly = new Map<string, { accuracy: number; seconds: number }>();
  const baseOnly = new Map<string, number>();
  for (const c of companies) {
    baseOnly.set(c.name, evaluate(base, initial, c.test).accuracy);
    const t0 = performance.now();
    const r = train({ base, adapters: initial, samples: c.train, epochs: budget.epochs, batchSize: budget.batchSize, lr: budget.lr, seed: budget.seed });
    const seconds = (performance.now() - t0) / 1000;
    const accuracy = evaluate(base, r.adapters, c.test).accuracy;
    localOnly.set(c.name, { accuracy, seconds });
    log(`local-only   ${c.name.padEnd(10)} ${pct(accuracy)}  (${c.train.length} samples, ${budget.epochs} epochs, ${seconds.toFixed(1)} s)`);
  }
  const pooled = companies.flatMap((c) => c.train);
  const t0 = performance.now();
  const central = train({ base, adapters: initial, samples: pooled, epochs: budget.epochs, batchSize: budget.batchSize, lr: budget.lr, seed: budget.seed });
  const centralizedSeconds = (performance.now() - t0) / 1000;
  const centralized = new Map<string, number>();
  for (const c of companies) centralized.set(c.name, evaluate(base, central.adapters, c.test).accuracy);
  log(`centralized  pooled     ${[...centralized].map(([n, a]) => `${n} ${pct(a)}`).join(', ')}  (${pooled.length} samples, ${centralizedSeconds.toFixed(1)} s)`);
  return { localOnly, centralized, centralizedSeconds, baseOnly };
}

/** Personalised accuracy: a private adapter trained (Ditto) on the company's train split on top of the shared adapters. */
export function personalize(base: BaseModel, shared: AdapterSet, c: CompanyData, opts: { epochs: number; batchSize: number; lr: number; lambda: number; seed: number }): { accuracy: number; seconds: number } {
  const t0 = performance.now();
  const { personal } = trainPersonal({ base, shared, samples: c.train, epochs: opts.epochs, batchSize: opts.batchSize, lr: opts.lr, lambda: opts.lambda, seed: opts.seed });
  const seconds = (performance.now() - t0) / 1000;
  return { accuracy: evaluate(base, [shared, personal], c.test).accuracy, seconds };
}

/** Fresh adapters for the demo's LoRA shape. */
export function initialAdapters(base: BaseModel, budget: TrainBudget): AdapterSet {
  return initAdapters(base, { rank: budget.rank, alpha: budget.alpha, seed: budget.seed });
}

/** A share as a percentage with one decimal. */
export function pct(x: number): string {
  return `${(100 * x).toFixed(1).padStart(5)} %`;
}
