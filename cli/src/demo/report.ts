import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderReportHtml } from './report-html.js';

/** Accuracy of one setting on a company's own test split. */
export interface Accuracy {
  readonly accuracy: number;
}

/** What a company reads to decide whether to join: its gain next to its cost. */
export interface CompanyReport {
  readonly name: string;
  readonly trainSamples: number;
  readonly testSamples: number;
  readonly modalities: readonly string[];
  /** The pretrained base with the initial (zero) adapters. */
  readonly baseOnly: Accuracy;
  /** Adapters trained on the company's own data only, same epoch budget as the federation. */
  readonly localOnly: Accuracy & { readonly trainingSeconds: number };
  /** The final shared adapters of the federation. */
  readonly federated: Accuracy;
  /** The shared adapters plus the company's private adapter (Ditto). */
  readonly personalized: Accuracy & { readonly trainingSeconds: number };
  /** Adapters trained on the pooled data of every company: the upper bound. */
  readonly centralized: Accuracy;
  /** max(federated, personalized) - localOnly, in accuracy points (0-1 scale). */
  readonly gain: number;
  readonly cost: {
    readonly bytesSent: number;
    readonly bytesReceived: number;
    /** Seconds the company's agent spent training, over all rounds. */
    readonly trainingSeconds: number;
    readonly roundsJoined: number;
  };
  /**
   * The company's DP spend in the task from the privacy service's ledger: epsilon composed over its
   * committed events at `delta`, with the events' largest sampling rate, smallest noise multiplier and total steps.
   */
  readonly privacy?: { readonly epsilon: number; readonly delta: number; readonly samplingRate: number; readonly noiseMultiplier: number; readonly steps: number };
  /** The company's contribution, when the valuation service answers. */
  readonly contribution?: { readonly value: number; readonly rewardShare: number; readonly tier: string };
}

/** One published round. */
export interface RoundReport {
  readonly number: number;
  readonly attempt: number;
  readonly versionId: string;
  readonly seconds: number;
  readonly received: readonly string[];
  readonly dropped: readonly string[];
  /** Accuracy of the round's published shared model on each company's test split. */
  readonly accuracy: Readonly<Record<string, number>>;
  readonly meanAccuracy: number;
  readonly bytesUp: number;
  readonly bytesDown: number;
  /** Per-round contribution of each company, when valuation answers. */
  readonly contributions?: Readonly<Record<string, number>>;
  /** Each company's epsilon in the task after this round (cumulative), when DP is on. */
  readonly epsilon?: Readonly<Record<string, number>>;
}

/** The demo's report (report.json). */
export interface DemoReport {
  readonly format: 'fedmm.demo-report';
  readonly version: 1;
  readonly generatedAt: string;
  readonly settings: {
    readonly seed: number;
    readonly rounds: number;
    readonly localEpochs: number;
    readonly batchSize: number;
    readonly lr: number;
    readonly rank: number;
    readonly alpha: number;
    readonly strategy: string;
    readonly personalEpochs: number;
    readonly pretrainEpochs: number;
    readonly companies: readonly string[];
    readonly tls: 'mutual';
    readonly backend: string;
  };
  readonly model: {
    readonly modelId: string;
    readonly baseVersionId: string;
    readonly initialVersionId: string;
    readonly finalVersionId: string;
    readonly publicAccuracy: number;
    readonly baseBytes: number;
    readonly adapterBytes: number;
  };
  readonly taskId: string;
  readonly companies: readonly CompanyReport[];
  readonly rounds: readonly RoundReport[];
  readonly bytes: { readonly up: number; readonly down: number };
  readonly summary: {
    readonly meanBaseOnly: number;
    readonly meanLocalOnly: number;
    readonly meanFederated: number;
    readonly meanPersonalized: number;
    readonly meanCentralized: number;
    /** meanCentralized - meanFederated, in points (0-1 scale). */
    readonly federatedGapToCentralized: number;
    /** Every company's max(federated, personalized) beats its local-only accuracy. */
    readonly everyCompanyGains: boolean;
  };
  /** The task's DP settings; record-level adds the planned sampling rate and local steps. */
  readonly privacy?: {
    readonly mode: string;
    readonly accountant: string;
    readonly delta: number;
    readonly noiseMultiplier?: number;
    readonly clipNorm?: number;
    readonly samplingRate?: number;
    readonly localSteps?: number;
  };
  /** Shapley method of the valuation service (exact, gtg, ...). */
  readonly contributionMethod?: string;
  /** What a contribution is measured in: `validation:accuracy` or the `consensus-distance` fallback. */
  readonly contributionUtility?: string;
  readonly timings: Readonly<Record<string, number>>;
}

/** Mean of a list (NaN for an empty one). */
export function mean(xs: readonly number[]): number {
  return xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Fills the summary from the per-company figures. */
export function summarize(companies: readonly CompanyReport[]): DemoReport['summary'] {
  const m = (f: (c: CompanyReport) => number): number => mean(companies.map(f));
  const meanFederated = m((c) => c.federated.accuracy);
  const meanCentralized = m((c) => c.centralized.accuracy);
  return {
    meanBaseOnly: m((c) => c.baseOnly.accuracy),
    meanLocalOnly: m((c) => c.localOnly.accuracy),
    meanFederated,
    meanPersonalized: m((c) => c.personalized.accuracy),
    meanCentralized,
    federatedGapToCentralized: meanCentralized - meanFederated,
    everyCompanyGains: companies.every((c) => Math.max(c.federated.accuracy, c.personalized.accuracy) > c.localOnly.accuracy),
  };
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Writes report.json and the self-contained report.html into `dir`; returns their paths. */
export function writeDemoReport(dir: string, report: DemoReport): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'report.json');
  const html = join(dir, 'report.html');
  writeAtomic(json, `${JSON.stringify(report, null, 2)}\n`);
  writeAtomic(html, renderReportHtml(report));
  return { json, html };
}
