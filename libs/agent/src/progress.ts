import { renderProgress, type TrainProgress } from '@fedmm/model';
import type { TransferProgress } from './connection.js';

/** Where progress lines go (stderr by default). */
export type ProgressSink = (line: string) => void;

export const stderrSink: ProgressSink = (line) => process.stderr.write(line + '\n');

/**
 * A progress reporter that prints at most one line per `minIntervalMs` (plus the last one), so a
 * long training run or transfer shows percent and throughput without flooding a log.
 */
export function trainingProgress(prefix: string, sink: ProgressSink, minIntervalMs = 2000): (p: TrainProgress) => void {
  let last = 0;
  return (p) => {
    const total = p.epochs * p.stepsPerEpoch;
    const done = (p.epoch - 1) * p.stepsPerEpoch + p.step;
    const now = Date.now();
    if (done < total && now - last < minIntervalMs) return;
    last = now;
    sink(`${prefix} ${((done / total) * 100).toFixed(0).padStart(3)}% ${renderProgress(p)}`);
  };
}

/** Same for byte transfers: percent, MiB and MiB/s. */
export function transferProgress(prefix: string, sink: ProgressSink, minIntervalMs = 2000): (p: TransferProgress) => void {
  const started = Date.now();
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (p.bytes < p.total && now - last < minIntervalMs) return;
    last = now;
    const mib = p.bytes / 2 ** 20;
    const rate = mib / Math.max(1e-3, (now - started) / 1000);
    const pct = p.total > 0 ? `${((p.bytes / p.total) * 100).toFixed(0).padStart(3)}%` : '   ?';
    sink(`${prefix} ${pct} ${mib.toFixed(2)} of ${(p.total / 2 ** 20).toFixed(2)} MiB ${rate.toFixed(2)} MiB/s`);
  };
}
